"""``VortextClient``: the three documented calls, rate-limited and safely retried.

The client composes the pieces, each in its own module: the HTTP layer (httpx or
httpx2), the limiter (tokens per window), the retry policy (what may be tried again)
and the converter (records on the wire).  Its one hard promise is about sends: each
ends as sent, certainly not sent, or uncertain, and an uncertain send is never
repeated unless the caller asked for at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import math
import os
import platform
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Final, TypedDict
from urllib.parse import quote, urlsplit

from . import _api
from ._bulk import DEFAULT_JOB, BulkJob, BulkProgress, send_bulk
from ._clock import Clock, MonotonicClock
from ._converter import decode, encode_sms, structure
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    HTTPStatusError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    UncertainSendError,
    UnexpectedStatusError,
    WrongEventLoopError,
)
from ._http import DEFAULT_MAX_RESPONSE_BYTES as _DEFAULT_MAX_RESPONSE_BYTES
from ._http import (
    Answer,
    Cert,
    HttpClient,
    HttpLayer,
    HttpLibrary,
    HttpLimits,
    HttpTimeout,
    HttpTransport,
    ProxyUrl,
    SecretStr,
    Verify,
    parse_retry_after,
)
from ._learned import LearnedRateLimiter
from ._limiter import Limiter, RateLimit, RateLimiter
from ._logging import FoldedLog, get_logger, mask_phone, show_phone_numbers
from ._models import JSONObject, Outcome, SendResult, SentSms, ServiceStatus, Sms, SmsDetail
from ._outcome import outcome_of
from ._redact import redact_url
from ._retry import Closing, RetryEvent, RetryPolicy, call_with_retries
from ._telemetry import telemetry
from ._validation import check_sms
from ._version import __version__

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "ClientOptions",
    "VortextClient",
]

logger = get_logger("client")

DEFAULT_TIMEOUT: Final = {"connect": 5.0, "read": 30.0, "write": 10.0, "pool": 10.0}
"""Seconds for each phase of a request: a short connect, a finite read."""
DEFAULT_ATTEMPT_TIMEOUT: Final = 60.0
"""Seconds one attempt may take in all (connection, request, status line, headers,
body): the phases of :data:`DEFAULT_TIMEOUT` add up to 55 s, rounded up.  Each phase
timeout bounds one wait only; a server that drips its answer a byte at a time never
trips them, this does."""
DEFAULT_MAX_RESPONSE_BYTES: Final = _DEFAULT_MAX_RESPONSE_BYTES
"""Decoded bytes of a 2xx answer read at most (1 MiB): this API's answers are tiny."""


class ClientOptions(TypedDict, total=False):
    """The arguments of :class:`VortextClient`, for a function that builds one for you.

    ``vortext_lifespan(**options)`` (FastAPI) and ``emulator_client(emulator,
    **options)`` (tests) take them as typed keyword arguments: a misspelt or
    mistyped option is a type checker's error, as it is on the client itself.
    """

    username: str | None
    password: str | None
    base_url: str | None
    timeout: HttpTimeout | None
    attempt_timeout: float
    max_response_bytes: int
    rate_limit: RateLimit | Limiter | None
    retry: RetryPolicy | None
    max_wait: float | None
    strict_phone_numbers: bool
    max_message_length: int
    log_phone_numbers: bool | None
    shield_sends: bool
    shutdown_grace: float
    on_retry: Callable[[RetryEvent], object] | None
    on_background_result: Callable[[SendResult], object] | None
    http_client: HttpClient | None
    http_library: HttpLibrary
    transport: HttpTransport | None
    limits: HttpLimits | None
    proxy: ProxyUrl | None
    verify: Verify
    cert: Cert | None
    trust_env: bool
    clock: Clock | None


class _Default:
    def __repr__(self) -> str:
        return "<client default>"


_DEFAULT: Final = _Default()


def _settle(on_settled: Callable[[bool], object] | None, *, possibly_accepted: bool) -> None:
    """Tell a send's caller that its attempt ended (``send``'s ``on_settled``)."""
    if on_settled is not None:
        try:
            on_settled(possibly_accepted)
        except Exception:
            logger.exception("on_settled hook raised")


class _Attempt:
    """A shielded send attempt: whether its request was handed to the transport (it
    may go out), the future its caller waits on, and the task that runs it."""

    __slots__ = ("handed_over", "task", "waiter")

    def __init__(self, waiter: asyncio.Future[None]) -> None:
        self.handed_over = False
        self.waiter = waiter
        self.task: asyncio.Task[SentSms] | None = None

    def wake(self) -> None:
        """Let the caller read the attempt's task (done by now, or about to be)."""
        if not self.waiter.done():  # the caller may have been cancelled meanwhile
            self.waiter.set_result(None)


class VortextClient:
    """An asyncio client of the Vortext SMS API.

    Use it as an async context manager, or call :meth:`aclose`.  Credentials and
    the base URL default to the ``VORTEXT_USERNAME``, ``VORTEXT_PASSWORD`` and
    ``VORTEXT_BASE_URL`` environment variables, then to :data:`INTERNET_BASE_URL`.

    Args:
        rate_limit: the account's caps (a :class:`RateLimit`), or a limiter shared with
            other clients or processes (a :class:`RateLimiter`, a ``RedisRateLimiter``).
        retry: what to retry and how long to wait (:class:`RetryPolicy`).
        max_wait: default wait budget of a send, in seconds: a send that the rate limit
            would hold longer fails at once with :class:`WaitBudgetExceededError`.
        strict_phone_numbers: refuse phone numbers that are not E.164 (by default only
            the shape is checked: ``+`` and 3 to 20 ASCII digits).
        max_message_length: the longest message text sent, in characters (default
            :data:`MAX_MESSAGE_LENGTH`, 1,600, an assumption: the API documents none);
            a longer one raises :class:`InvalidRequestError` before anything is sent.
        log_phone_numbers: show phone numbers whole in log lines; by default they are
            masked (``********2727``).  None: true when the ``VORTEXT_LOG_PHONE_NUMBERS``
            environment variable is ``1``, ``true`` or ``yes``.
        shield_sends: once a send's request is handed to the transport, cancelling the
            caller does not abandon it: it finishes in the background and its result goes
            to the log and to ``on_background_result``.  False: cancellation cuts it.
        shutdown_grace: seconds :meth:`aclose` lets sends in flight finish.
        timeout: seconds, or an httpx ``Timeout``, for each phase of a request
            (default :data:`DEFAULT_TIMEOUT`): each bounds one wait, not the attempt.
        attempt_timeout: seconds one attempt may take in all, on every transport and
            with a handed-in ``http_client`` (default :data:`DEFAULT_ATTEMPT_TIMEOUT`,
            60 s).  A send cut by it is uncertain (:class:`UncertainSendError`: the
            client cannot tell how far it went, so keep it above the connect and pool
            timeouts); a read cut by it is a :class:`RequestTimeoutError`, retried like
            any timeout.  The rate limiter gets it as the longest an attempt holds its
            tokens.
        max_response_bytes: decoded bytes of a 2xx answer read at most (default
            :data:`DEFAULT_MAX_RESPONSE_BYTES`, 1 MiB; compressed answers are decoded
            within it).  A larger answer to a send makes it uncertain; to a read, an
            :class:`InvalidResponseError`.  Errors keep an excerpt of any body.
        http_client: an ``httpx.AsyncClient`` or ``httpx2.AsyncClient`` to use (left open;
            it never follows redirects for this client).
        http_library: ``"auto"`` (httpx2 if installed, else httpx), ``"httpx"`` or ``"httpx2"``.
        transport: what carries the requests of the client built here: ``"auto"`` (the
            default: the direct aiohttp path; httpcore when a SOCKS proxy is set),
            ``"aiohttp"`` (the direct path, or a ``ConfigurationError`` for what it
            cannot do), ``"httpx"`` (httpcore, through the library's ``AsyncClient``), or
            a transport object of the library (an ASGI app's, a mock).
        limits: connection pool limits of the client built here (an httpx ``Limits``).
        proxy: a proxy for every request (``http://``, ``https://``; ``socks5://`` on
            httpcore), credentials allowed in it: they never show in a ``repr``, a log
            line or an error.  Given, the environment's proxies are ignored (as in httpx).
        verify: TLS verification: True (certifi's CA bundle, as httpx), a CA bundle
            file or directory, an ``ssl.SSLContext``, or False (none: tests only).
        cert: a client certificate: a PEM file, or ``(certificate, key)`` or
            ``(certificate, key, password)`` files.
        trust_env: read ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``
            (and ``SSL_CERT_FILE``/``SSL_CERT_DIR``) from the environment, with httpx's
            rules, whatever the transport.
        clock: the clock and sleep of the limiter and the retries (tests: a VirtualClock).
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        base_url: str | None = None,
        timeout: HttpTimeout | None = None,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rate_limit: RateLimit | Limiter | None = None,
        retry: RetryPolicy | None = None,
        max_wait: float | None = None,
        strict_phone_numbers: bool = False,
        max_message_length: int = _api.MAX_MESSAGE_LENGTH,
        log_phone_numbers: bool | None = None,
        shield_sends: bool = True,
        shutdown_grace: float = 10.0,
        on_retry: Callable[[RetryEvent], object] | None = None,
        on_background_result: Callable[[SendResult], object] | None = None,
        http_client: HttpClient | None = None,
        http_library: HttpLibrary = "auto",
        transport: HttpTransport | None = "auto",
        limits: HttpLimits | None = None,
        proxy: ProxyUrl | None = None,
        verify: Verify = True,
        cert: Cert | None = None,
        trust_env: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if proxy is not None:  # from here on this frame shows '<redacted>'
            proxy = SecretStr(str(proxy))
        username = username if username is not None else os.environ.get(_api.ENV_USERNAME)
        password = password if password is not None else os.environ.get(_api.ENV_PASSWORD)
        if not username:
            raise ConfigurationError(f"no username: pass username= or set {_api.ENV_USERNAME}")
        if not password:
            raise ConfigurationError(f"no password: pass password= or set {_api.ENV_PASSWORD}")
        # From here on this frame shows '<redacted>', should building the client fail.
        password = SecretStr(password)
        if max_wait is not None and max_wait < 0:
            raise ConfigurationError(f"max_wait must be >= 0 seconds, not {max_wait!r}")
        if (
            isinstance(max_message_length, bool)
            or not isinstance(max_message_length, int)
            or max_message_length < 1
        ):
            raise ConfigurationError(
                f"max_message_length must be an int >= 1 (characters), not {max_message_length!r}"
            )
        if shutdown_grace < 0:
            raise ConfigurationError(f"shutdown_grace must be >= 0 seconds, not {shutdown_grace!r}")
        if (
            isinstance(attempt_timeout, bool)
            or not isinstance(attempt_timeout, int | float)
            or not 0 < attempt_timeout < math.inf
        ):
            raise ConfigurationError(
                f"attempt_timeout must be a finite number of seconds > 0, not {attempt_timeout!r}"
            )
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ConfigurationError(
                f"max_response_bytes must be a positive integer, not {max_response_bytes!r}"
            )
        self.attempt_timeout: float = float(attempt_timeout)
        """Seconds one attempt may take in all; also the limiter's in-flight bound."""
        self.max_response_bytes: int = max_response_bytes
        """Decoded bytes of a 2xx answer read at most."""

        self._clock: Clock = clock if clock is not None else MonotonicClock()
        if http_client is not None:
            given = [
                name
                for name, differs in (
                    ("transport", transport not in (None, "auto")),
                    ("limits", limits is not None),
                    ("proxy", proxy is not None),
                    ("verify", verify is not True),
                    ("cert", cert is not None),
                    ("trust_env", trust_env is not True),
                )
                if differs
            ]
            if given:
                raise ConfigurationError(f"give {'/'.join(given)} to your http_client, not here")
            self._http = HttpLayer(http_client, owned=False)
            if timeout is not None:
                self._request_timeout = self._http.timeout_of(timeout)
            else:
                self._request_timeout = None  # the handed-in client's own
        else:
            self._http = HttpLayer.build(
                http_library,
                timeout=timeout if timeout is not None else _Timeouts(**DEFAULT_TIMEOUT),
                limits=limits,
                transport=transport,
                proxy=proxy,
                verify=verify,
                cert=cert,
                trust_env=trust_env,
            )
            self._request_timeout = None

        if base_url is None:
            base_url = os.environ.get(_api.ENV_BASE_URL)
        if base_url is None and http_client is not None and str(http_client.base_url):
            base_url = str(http_client.base_url)
        self.base_url: str = _check_base_url(base_url or _api.INTERNET_BASE_URL)

        self.limiter: Limiter
        if rate_limit is None:  # no caps given: learn them from the 429s
            self.limiter = LearnedRateLimiter(clock=self._clock)
        elif isinstance(rate_limit, RateLimit):
            self.limiter = RateLimiter(rate_limit, clock=self._clock)
        else:
            self.limiter = rate_limit
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.max_wait = max_wait
        self.strict_phone_numbers = strict_phone_numbers
        self.max_message_length = max_message_length
        self.log_phone_numbers: bool = (
            log_phone_numbers if log_phone_numbers is not None else show_phone_numbers()
        )
        self.shield_sends = shield_sends
        self.shutdown_grace = shutdown_grace
        self._on_retry = on_retry
        self._folded = FoldedLog(logger, self._clock)
        self._telemetry = telemetry(self._clock)  # None: OpenTelemetry absent or unset
        self._on_background_result = on_background_result

        # Computed once: every request reuses them (no per-request auth flow).
        self.user_agent: str = (
            f"vortext-async/{__version__} ({self._http.library}/{self._http.version}; "
            f"Python/{platform.python_version()})"
        )
        get_headers = {
            # Its repr is redacted: frames holding the headers never show it.
            "Authorization": _basic_auth(username, password),
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        self._get_headers = get_headers
        self._sms_url = self.base_url + _api.SMS_PATH
        self._sms_target = self._http.prepare(
            "POST", self._sms_url, {**get_headers, "Content-Type": "application/json"}
        )
        self._extensions = (
            {"timeout": self._request_timeout.as_dict()}
            if self._request_timeout is not None
            else None
        )
        # The event loop of the first call: connections and timers belong to it.
        self._loop: asyncio.AbstractEventLoop | None = None

        self._attempts: dict[asyncio.Task[SentSms], _Attempt] = {}
        self._background: set[asyncio.Task[SentSms]] = set()
        self._closing = False
        self._closed = False
        self._stop_retries = Closing()  # set by aclose: no more waits between attempts
        self._close_task: asyncio.Future[None] | None = None

    # -- public API ----------------------------------------------------------------

    @property
    def http_library(self) -> str:
        """Which library carries the requests: ``"httpx"`` or ``"httpx2"``."""
        return self._http.library

    @property
    def transport(self) -> str:
        """What carries the requests: ``"aiohttp"`` (the direct path, the default),
        ``"httpx"`` (httpcore) or ``"custom"`` (a transport object, a handed-in
        ``http_client``)."""
        return self._http.name

    @property
    def http_client(self) -> HttpClient:
        """The underlying ``AsyncClient``."""
        return self._http.client

    @property
    def clock(self) -> Clock:
        """The clock of the limiter and the retries (and of a bulk job's patience)."""
        return self._clock

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has started: new sends are refused."""
        return self._closing

    async def status(self, *, retry: RetryPolicy | None = None) -> ServiceStatus:
        """``GET /status``: the service's status (retried on transient failures)."""
        response = await self._read(self.base_url + _api.STATUS_PATH, retry)
        body = response.content
        if not body.strip():
            return ServiceStatus()
        data = decode(body, "the answer to GET /status")
        if isinstance(data, str):
            return ServiceStatus(status=data)
        return structure(data, ServiceStatus, body=body, what="the answer to GET /status")

    async def get_sms(self, message_id: str, *, retry: RetryPolicy | None = None) -> SmsDetail:
        """``GET /sms/{message_id}``: an SMS sent earlier, with its metadata."""
        if not isinstance(message_id, str) or not message_id.strip():
            raise InvalidRequestError("message_id", message_id, "must be a non-empty string")
        path = _api.SMS_DETAIL_PATH.format(message_id=quote(message_id, safe=""))
        response = await self._read(self.base_url + path, retry)
        body = response.content
        data = decode(body, f"the answer to GET {path}")
        return structure(data, SmsDetail, body=body, what=f"the answer to GET {path}")

    async def send_sms(
        self,
        phone_number: str,
        message: str,
        *,
        metadata: JSONObject | None = None,
        max_wait: float | _Default | None = _DEFAULT,
        retry: RetryPolicy | None = None,
    ) -> SentSms:
        """Send one SMS (``POST /sms``); see :meth:`send` for what may be raised."""
        return await self.send(
            Sms(phone_number, message, metadata=metadata), max_wait=max_wait, retry=retry
        )

    async def send(
        self,
        sms: Sms,
        *,
        max_wait: float | _Default | None = _DEFAULT,
        retry: RetryPolicy | None = None,
        on_handover: Callable[[], object] | None = None,
        on_settled: Callable[[bool], object] | None = None,
    ) -> SentSms:
        """Send ``sms`` and return the server's :class:`SentSms`.

        Raises :class:`InvalidRequestError` before anything is sent for bad input,
        :class:`WaitBudgetExceededError` when the rate limit would hold it longer than
        ``max_wait``, :class:`UncertainSendError` when it may have been accepted (not
        resent unless ``retry.retry_uncertain_sends``), and another
        :class:`VortextError` when it was certainly not accepted.

        ``on_handover`` is called each time an attempt's request is handed to the
        transport: from then on the SMS may reach the server.  A send cancelled before
        the first call sent nothing (``send_bulk`` reports it FAILED, not uncertain).
        ``on_settled`` is called when such an attempt ends, with whether the server may
        have accepted it (False: certainly not, as after a 429 or a 503); a send waiting
        to retry after attempts all settled ``False`` has sent nothing either.
        """
        if self._closing:
            raise ClientClosedError("the client is closed; no new sends are accepted")
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()
        start = self._clock.now_ns() if self._telemetry is not None else 0
        try:
            body = self._encode(sms)
        except InvalidRequestError as error:
            if self._telemetry is not None:  # a send too, if a short one: counted
                self._telemetry.refused(error, start)
            raise
        wait_budget = self.max_wait if isinstance(max_wait, _Default) else max_wait
        policy = retry if retry is not None else self.retry
        if self._telemetry is None:
            return await self._send_tries(sms, body, wait_budget, policy, on_handover, on_settled)
        return await self._telemetry.send(
            functools.partial(
                self._send_tries, sms, body, wait_budget, policy, on_settled=on_settled
            ),
            on_handover,
        )

    def _encode(self, sms: Sms) -> bytes:
        """The body of ``sms``, or :class:`InvalidRequestError` (nothing went out)."""
        try:
            check_sms(
                sms,
                strict_numbers=self.strict_phone_numbers,
                max_message_length=self.max_message_length,
            )
            return encode_sms(sms, max_metadata_size=_api.MAX_METADATA_SIZE)
        except InvalidRequestError:
            raise
        except Exception as error:  # whatever it was, nothing went out: never uncertain
            raise InvalidRequestError(
                "sms", sms, f"cannot be encoded as JSON: {type(error).__name__}: {error}"
            ) from None

    def send_bulk(
        self,
        messages: Iterable[Sms] | AsyncIterable[Sms],
        *,
        concurrency: int = 64,
        journal: str | os.PathLike[str] | None = None,
        job: str = DEFAULT_JOB,
        resend_uncertain: bool = False,
        retry_failed: bool = True,
        replace_changed: bool = False,
        on_progress: Callable[[BulkProgress], object] | None = None,
        grace: float = 10.0,
        max_wait: float | None = None,
        rate_limit_patience: float = 7200.0,
    ) -> BulkJob:
        """Send many messages at the account's pace; see :func:`vortext_async.send_bulk`.

        ``async for result in client.send_bulk(messages, concurrency=64, journal=path)``
        yields one :class:`SendResult` per message, as each finishes.

        Args:
            messages: the messages, read lazily (an iterable or an async iterable).
            concurrency: sends in flight at most.
            journal: a SQLite file recording each message, to resume without resending,
                or a ``postgresql://`` URL whose journal several hosts share.
            job: the job's name within the journal; keys are unique per job.
            resend_uncertain: with ``journal``, resend what an earlier run left uncertain.
            retry_failed: with ``journal``, resend what an earlier run failed for a
                passing reason.
            replace_changed: with ``journal``, let a changed message take a key whose
                earlier message surely was not sent (FAILED); never a SENT or UNCERTAIN one.
            on_progress: called with the job's counts as it goes.
            grace: seconds the sends in flight get when the job is stopped.
            max_wait: each send's wait budget for the rate limiter (None: as long as the
                pace needs, whatever the client's default).
            rate_limit_patience: seconds the job keeps sending again the messages the
                server refused for its rate limit (429) while it accepts none of them;
                past that, counting the server's ``Retry-After``, the job gives up on
                the account and the messages left fail unsent (0: a refusal is final,
                once the retry policy gives up).
        """
        return send_bulk(
            self,
            messages,
            concurrency=concurrency,
            journal=journal,
            job=job,
            resend_uncertain=resend_uncertain,
            retry_failed=retry_failed,
            replace_changed=replace_changed,
            on_progress=on_progress,
            grace=grace,
            max_wait=max_wait,
            rate_limit_patience=rate_limit_patience,
        )

    async def aclose(self, *, grace: float | None = None) -> None:
        """Refuse new sends, let sends in flight finish (``grace`` seconds), then close.

        Sends that have not gone out stop at once: one waiting for a rate-limit token
        fails as not sent (:class:`ClientClosedError`), and so does one waiting to retry
        (after a 503, a 429 or a failed connection), unless an earlier attempt of it may
        have been accepted (opted-in ``retry_uncertain_sends``): then it is
        :class:`UncertainSendError`.  Reads waiting to retry fail with
        ``ClientClosedError``.  A send still unanswered after the grace period is cut
        and reported as UNCERTAIN (log and ``on_background_result``): none disappears
        silently.

        Every call returns once the close is complete: a second call, made while the
        first runs, waits for the same close (whose ``grace`` is the first call's).  A
        cancelled call stops waiting; the close goes on.
        """
        if self._close_task is None:
            if self._loop is not None and self._loop is not asyncio.get_running_loop():
                if not self._loop.is_closed():
                    self._bind_loop()  # raises: its resources belong to a loop still running
                # Its loop is gone, and with it every task and connection it ran: nothing
                # is left that this loop could close or wait for.
                self._closing = self._closed = True
                return
            self._closing = True
            self._stop_retries.set()
            # A send still waiting for its turn never left: stop it now (not sent).
            for task, attempt in list(self._attempts.items()):
                if not attempt.handed_over:
                    task.add_done_callback(self._forget_attempt)
                    task.cancel()
            grace = self.shutdown_grace if grace is None else grace
            self._close_task = asyncio.ensure_future(self._close(grace))
        # Shielded: a cancelled caller does not cut the close that others wait for.
        await asyncio.shield(self._close_task)

    async def _close(self, grace: float) -> None:
        pending = set(self._attempts) | self._background
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._stop_retries.wait_stopped()  # calls stopped between attempts have raised
        self._folded.flush()
        await self.limiter.aclose()
        await self._http.aclose()
        self._closed = True

    async def __aenter__(self) -> VortextClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        if not hasattr(self, "_http") or not hasattr(self, "base_url"):
            return "<VortextClient (not built)>"  # a frame of a failed __init__ shows it
        return f"<VortextClient base_url={self.base_url!r} http_library={self.http_library!r}>"

    def _bind_loop(self) -> None:
        """Tie the client to the running loop on first use; refuse any other loop after."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            return
        raise WrongEventLoopError(
            "this VortextClient was first used on another event loop"
            f"{' (now closed)' if self._loop.is_closed() else ''}, and its connections "
            "and rate-limiter timers belong to that loop; nothing was sent.  Create the "
            "client inside the coroutine that uses it (one per asyncio.run), for example "
            "`async with VortextClient() as client:`"
        )

    # -- sends -----------------------------------------------------------------------

    def _send_tries(
        self,
        sms: Sms,
        body: bytes,
        max_wait: float | None,
        policy: RetryPolicy,
        on_handover: Callable[[], object] | None,
        on_settled: Callable[[bool], object] | None = None,
    ) -> Awaitable[SentSms]:
        # Not a coroutine of its own: the caller awaits call_with_retries' (one frame
        # less per send).
        return call_with_retries(
            functools.partial(self._send_attempt, sms, body, max_wait, on_handover, on_settled),
            operation="send",
            policy=policy,
            clock=self._clock,
            on_retry=self._retried
            if sms.key is None
            else functools.partial(self._retried, key=sms.key),
            closing=self._stop_retries,
        )

    async def _send_attempt(
        self,
        sms: Sms,
        body: bytes,
        max_wait: float | None,
        on_handover: Callable[[], object] | None,
        on_settled: Callable[[bool], object] | None,
    ) -> SentSms:
        """One attempt, run as its own task so a cancelled caller does not cut it."""
        if self._closing:
            raise ClientClosedError("the client is closing; no new attempts are made")
        if not self.shield_sends:
            return await self._post_sms(sms, body, max_wait, None, on_handover, on_settled)
        # asyncio.shield(task), with fewer objects and turns per send: the caller waits
        # on a future of its own, so cancelling the caller never reaches the task, and
        # the task's last step forgets the attempt and wakes the caller (no done
        # callback: one handle and one event-loop turn less per send, and at high
        # concurrency fewer objects outlive a turn).  A task cancelled before its first
        # step runs none of its code: whoever cancels one that has not handed its
        # request over (aclose, a cancelled caller) adds the done callback that does.
        loop = asyncio.get_running_loop()
        attempt = _Attempt(loop.create_future())
        task = loop.create_task(
            self._post_sms(sms, body, max_wait, attempt, on_handover, on_settled)
        )
        attempt.task = task
        self._attempts[task] = attempt
        waiter = attempt.waiter
        try:
            await waiter
            return task.result()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and not current.cancelling() and task.cancelled():
                # Not our caller's cancellation: aclose() stopped the send.
                if not attempt.handed_over:
                    raise ClientClosedError(
                        "the client closed before this send took its turn; it was not sent"
                    ) from None
                raise UncertainSendError(
                    sms, ClientClosedError("the client closed before the server answered")
                ) from None
            if not attempt.handed_over:
                task.add_done_callback(self._forget_attempt)
                task.cancel()  # still waiting for a token: nothing went out
                await asyncio.wait([task])
            else:
                self._detach(sms, task)
            raise

    async def _post_sms(
        self,
        sms: Sms,
        body: bytes,
        max_wait: float | None,
        attempt: _Attempt | None,
        on_handover: Callable[[], object] | None,
        on_settled: Callable[[bool], object] | None,
    ) -> SentSms:
        """One attempt; with ``attempt``, run as a task of its own that wakes its caller
        as it ends (see :meth:`_send_attempt`)."""
        try:
            telemetry = self._telemetry
            if telemetry is not None:
                asked = self._clock.now_ns()
            # The limiter gets the very bound the HTTP layer enforces: a token held by this
            # attempt is back by ``attempt_timeout`` + W at the latest, by construction.
            async with self.limiter.acquire(
                max_wait=max_wait, attempt_timeout=self.attempt_timeout
            ) as permit:
                if telemetry is not None:
                    telemetry.waited(asked)
                if attempt is not None:
                    attempt.handed_over = True
                if on_handover is not None:
                    try:
                        on_handover()
                    except Exception:
                        logger.exception("on_handover hook raised")
                try:
                    response = await self._http.exchange(
                        self._sms_target,
                        body,
                        extensions=self._extensions,
                        attempt_timeout=self.attempt_timeout,
                        max_bytes=self.max_response_bytes,
                    )
                except TransportError as error:
                    _settle(on_settled, possibly_accepted=not error.certainly_not_sent)
                    if error.certainly_not_sent:
                        permit.refund()
                        raise
                    raise UncertainSendError(sms, error) from error
            # The permit settled when the answer was complete; now read it.
            status = response.status_code
            content: bytes = response.content
            if 200 <= status < 300:
                _settle(on_settled, possibly_accepted=True)
                if response.problem is not None:
                    # The server answered, so it may have accepted: we cannot read its id.
                    unread = InvalidResponseError(
                        f"the answer to POST {_api.SMS_PATH}: {response.problem}", body=content
                    )
                    raise UncertainSendError(sms, unread) from unread
                return _read_sent(sms, content)
            # A redirect (3xx) is not certainly-not-sent (see UnexpectedStatusError).
            refusal = await self._status_error(response, "POST", self._sms_url)
            _settle(on_settled, possibly_accepted=not refusal.certainly_not_sent)
            if refusal.certainly_not_sent:
                raise refusal
            raise UncertainSendError(sms, refusal) from refusal
        finally:
            if attempt is not None:
                self._attempts.pop(attempt.task, None)  # type: ignore[arg-type]
                attempt.wake()

    def _forget_attempt(self, task: asyncio.Task[SentSms]) -> None:
        # For a task cancelled before its first step: none of its code ran.
        attempt = self._attempts.pop(task, None)
        if attempt is not None:
            attempt.wake()

    def _detach(self, sms: Sms, task: asyncio.Task[SentSms]) -> None:
        self._background.add(task)

        def report(done: asyncio.Task[SentSms]) -> None:
            self._background.discard(done)
            self._report_background(_result_of(sms, done))

        task.add_done_callback(report)

    def _retried(self, event: RetryEvent, key: str | None = None) -> None:
        """Each retry: one folded warning per cause, then the caller's hook.

        A retry folded into a count is still logged at DEBUG: one record per retry.
        ``key`` is the message's :attr:`Sms.key` (for a send that has one).
        """
        error = event.error
        message = (
            f"{event.operation} attempt {event.attempt} failed, trying again in "
            f"{event.wait:.3f} s: {type(error).__name__}: {error}"
        )
        fields: dict[str, object] = {
            "vortext_operation": event.operation,
            "vortext_attempt": event.attempt,
            "vortext_wait": event.wait,
            "vortext_error": type(error).__name__,
        }
        if key is not None:
            fields["vortext_message_key"] = key
        cause = f"{event.operation} {type(error).__name__}"
        folded = not self._folded.log(cause, logging.WARNING, message, fields)
        if folded and logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", message, extra={"vortext_cause": cause, **fields})
        if self._telemetry is not None:
            self._telemetry.retried(error, event.operation)
        if self._on_retry is not None:
            self._on_retry(event)  # call_with_retries logs a broken hook

    def _report_background(self, result: SendResult) -> None:
        level = logging.INFO if result.outcome is Outcome.SENT else logging.WARNING
        number = result.sms.phone_number
        detail = f" (message id {result.message_id})" if result.message_id else f": {result.error}"
        shown = mask_phone(number, show=self.log_phone_numbers)
        if shown != number and isinstance(number, str) and number:
            detail = detail.replace(number, shown)  # a server's error may quote it
        self._folded.log(
            f"background {result.outcome.value}",
            level,
            f"send finished after its caller was cancelled: {result.outcome.value} to "
            f"{shown}{detail}",
            {
                "vortext_outcome": result.outcome.value,
                "vortext_message_id": result.message_id,
                "vortext_message_key": result.sms.key,
            },
        )
        if self._on_background_result is not None:
            try:
                self._on_background_result(result)
            except Exception:
                logger.exception("on_background_result hook raised")

    # -- reads -----------------------------------------------------------------------

    async def _read(self, url: str, retry: RetryPolicy | None) -> Answer:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()

        target = self._http.prepare("GET", url, self._get_headers)

        async def attempt() -> Answer:
            response = await self._http.exchange(
                target,
                extensions=self._extensions,
                attempt_timeout=self.attempt_timeout,
                max_bytes=self.max_response_bytes,
            )
            if 200 <= response.status_code < 300:
                if response.problem is not None:
                    raise InvalidResponseError(
                        f"the answer to GET {url}: {response.problem}", body=response.content
                    )
                return response
            raise await self._status_error(response, "GET", url)

        return await call_with_retries(
            attempt,
            operation="read",
            policy=retry if retry is not None else self.retry,
            clock=self._clock,
            on_retry=self._retried,
            closing=self._stop_retries,
        )

    async def _status_error(self, response: Answer, method: str, url: str) -> HTTPStatusError:
        """The error for a non-2xx answer; a 429 also pauses every sender."""
        status = response.status_code
        headers = response.headers
        body = response.content
        if status == _api.RATE_LIMITED:
            retry_after = parse_retry_after(headers)
            await self.limiter.pause(
                retry_after if retry_after is not None else _api.DEFAULT_RATE_LIMIT_PAUSE
            )
            return RateLimitedError(
                status, method=method, url=url, headers=headers, body=body, retry_after=retry_after
            )
        if status >= 500:
            return ServerError(
                status,
                method=method,
                url=url,
                headers=headers,
                body=body,
                certainly_not_sent=status in _api.NOT_PROCESSED_5XX,
                retry_after=parse_retry_after(headers),
            )
        error_class = _STATUS_ERRORS.get(status, UnexpectedStatusError)
        return error_class(status, method=method, url=url, headers=headers, body=body)


_STATUS_ERRORS: Final[dict[int, type[HTTPStatusError]]] = {
    400: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
}


class _Timeouts:
    """Default timeouts, converted to the chosen library's ``Timeout`` by the layer."""

    def __init__(self, connect: float, read: float, write: float, pool: float) -> None:
        self.connect, self.read, self.write, self.pool = connect, read, write, pool


def _basic_auth(username: str, password: str) -> SecretStr:
    """The ``Authorization`` value, built in one expression: no frame holds the token."""
    return SecretStr("Basic " + base64.b64encode(f"{username}:{password}".encode()).decode())


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if "@" in url and (parts.username or parts.password or not parts.netloc):
        raise ConfigurationError(
            f"base_url must not contain credentials, not {redact_url(url)!r}; "
            "pass username= and password="
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigurationError(
            f"base_url must not have a query or a fragment, not {redact_url(url)!r}: "
            "the API's paths are appended to it"
        )
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(
            f"base_url must be an http(s) URL such as {_api.INTERNET_BASE_URL!r}, "
            f"not {redact_url(url)!r}"
        )
    return url.rstrip("/")


def _read_sent(sms: Sms, content: bytes) -> SentSms:
    """A 2xx answer to a send: the message id, or an uncertain send if there is none."""
    what = "the answer to POST /sms"
    try:
        data = decode(content, what)
        if type(data) is dict and len(data) == 1:
            # The usual answer, {"messageId": "<id>"}: the very record the converter
            # builds (no extra fields), without its machinery.
            message_id = data.get("messageId")
            if type(message_id) is str and message_id:
                return SentSms(message_id)
        sent = structure(data, SentSms, body=content, what=what)
        if not sent.message_id:
            raise InvalidResponseError(f"{what} has an empty messageId", body=content)
    except InvalidResponseError as error:
        raise UncertainSendError(sms, error) from error
    return sent


def _result_of(sms: Sms, task: asyncio.Task[SentSms]) -> SendResult:
    if task.cancelled():
        cause = UncertainSendError(sms, ClientClosedError("the send was cut before its answer"))
        return SendResult(sms, Outcome.UNCERTAIN, error=cause)
    error = task.exception()
    if error is None:
        return SendResult(sms, Outcome.SENT, sent=task.result())
    return SendResult(sms, outcome_of(error), error=error)
