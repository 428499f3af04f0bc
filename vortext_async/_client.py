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
import os
import platform
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

from . import _api
from ._bulk import BulkJob, send_bulk
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
)
from ._http import Answer, HttpLayer, HttpLibrary, parse_retry_after
from ._limiter import Limiter, RateLimit, RateLimiter
from ._models import Outcome, SendResult, SentSms, ServiceStatus, Sms, SmsDetail
from ._outcome import outcome_of
from ._retry import RetryEvent, RetryPolicy, call_with_retries
from ._validation import check_sms
from ._version import __version__

__all__ = ["DEFAULT_TIMEOUT", "VortextClient"]

logger = logging.getLogger("vortext_async")

DEFAULT_TIMEOUT: Final = {"connect": 5.0, "read": 30.0, "write": 10.0, "pool": 10.0}
"""Seconds for each phase of a request: a short connect, a finite read."""


class _Default:
    def __repr__(self) -> str:
        return "<client default>"


_DEFAULT: Final = _Default()


def _wake(waiter: asyncio.Future[None], _task: object) -> None:
    if not waiter.done():  # the caller may have been cancelled meanwhile
        waiter.set_result(None)


class _Attempt:
    """Whether a send attempt's request was handed to the transport (it may go out)."""

    __slots__ = ("handed_over",)

    def __init__(self) -> None:
        self.handed_over = False


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
        shield_sends: once a send's request is handed to the transport, cancelling the
            caller does not abandon it: it finishes in the background and its result goes
            to the log and to ``on_background_result``.  False: cancellation cuts it.
        shutdown_grace: seconds :meth:`aclose` lets sends in flight finish.
        http_client: an ``httpx.AsyncClient`` or ``httpx2.AsyncClient`` to use (left open).
        http_library: ``"auto"`` (httpx2 if installed, else httpx), ``"httpx"`` or ``"httpx2"``.
        transport: a transport for the client built here (an ASGI app's, a faster one).
        clock: the clock and sleep of the limiter and the retries (tests: a VirtualClock).
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        base_url: str | None = None,
        timeout: Any = None,
        rate_limit: RateLimit | Limiter | None = None,
        retry: RetryPolicy | None = None,
        max_wait: float | None = None,
        strict_phone_numbers: bool = False,
        shield_sends: bool = True,
        shutdown_grace: float = 10.0,
        on_retry: Callable[[RetryEvent], object] | None = None,
        on_background_result: Callable[[SendResult], object] | None = None,
        http_client: Any = None,
        http_library: HttpLibrary = "auto",
        transport: Any = None,
        limits: Any = None,
        clock: Clock | None = None,
    ) -> None:
        username = username if username is not None else os.environ.get(_api.ENV_USERNAME)
        password = password if password is not None else os.environ.get(_api.ENV_PASSWORD)
        if not username:
            raise ConfigurationError(f"no username: pass username= or set {_api.ENV_USERNAME}")
        if not password:
            raise ConfigurationError(f"no password: pass password= or set {_api.ENV_PASSWORD}")
        if max_wait is not None and max_wait < 0:
            raise ConfigurationError(f"max_wait must be >= 0 seconds, not {max_wait!r}")
        if shutdown_grace < 0:
            raise ConfigurationError(f"shutdown_grace must be >= 0 seconds, not {shutdown_grace!r}")

        self._clock: Clock = clock if clock is not None else MonotonicClock()
        if http_client is not None:
            if transport is not None or limits is not None:
                raise ConfigurationError("give transport/limits to your http_client, not here")
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
            )
            self._request_timeout = None

        if base_url is None:
            base_url = os.environ.get(_api.ENV_BASE_URL)
        if base_url is None and http_client is not None and str(http_client.base_url):
            base_url = str(http_client.base_url)
        self.base_url: str = _check_base_url(base_url or _api.INTERNET_BASE_URL)

        if rate_limit is None:
            rate_limit = RateLimit()
        self.limiter: Limiter = (
            RateLimiter(rate_limit, clock=self._clock)
            if isinstance(rate_limit, RateLimit)
            else rate_limit
        )
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.max_wait = max_wait
        self.strict_phone_numbers = strict_phone_numbers
        self.shield_sends = shield_sends
        self.shutdown_grace = shutdown_grace
        self._on_retry = on_retry
        self._on_background_result = on_background_result

        # Computed once: every request reuses them (no per-request auth flow).
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self.user_agent: str = (
            f"vortext-async/{__version__} ({self._http.library}/{self._http.version}; "
            f"Python/{platform.python_version()})"
        )
        get_headers = {
            "Authorization": f"Basic {token}",
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
        self._attempt_timeout = _attempt_seconds(timeout)

        self._attempts: dict[asyncio.Task[SentSms], _Attempt] = {}
        self._background: set[asyncio.Task[SentSms]] = set()
        self._closing = False
        self._closed = False

    # -- public API ----------------------------------------------------------------

    @property
    def http_library(self) -> str:
        """Which library carries the requests: ``"httpx"`` or ``"httpx2"``."""
        return self._http.library

    @property
    def http_client(self) -> Any:
        """The underlying ``AsyncClient``."""
        return self._http.client

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
        metadata: Mapping[str, Any] | None = None,
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
        """
        if self._closing:
            raise ClientClosedError("the client is closed; no new sends are accepted")
        check_sms(sms, strict_numbers=self.strict_phone_numbers)
        try:
            body = encode_sms(sms)
        except (TypeError, ValueError) as error:
            raise InvalidRequestError(
                "metadata", sms.metadata, f"is not JSON-serialisable: {error}"
            ) from None
        wait_budget = self.max_wait if isinstance(max_wait, _Default) else max_wait
        policy = retry if retry is not None else self.retry
        return await call_with_retries(
            functools.partial(self._send_attempt, sms, body, wait_budget, on_handover),
            operation="send",
            policy=policy,
            clock=self._clock,
            on_retry=self._on_retry,
        )

    def send_bulk(self, messages: Iterable[Sms] | AsyncIterable[Sms], **options: Any) -> BulkJob:
        """Send many messages at the account's pace; see :func:`vortext_async.send_bulk`.

        ``async for result in client.send_bulk(messages, concurrency=64, journal=path)``
        yields one :class:`SendResult` per message, as each finishes.
        """
        return send_bulk(self, messages, **options)

    async def aclose(self, *, grace: float | None = None) -> None:
        """Refuse new sends, let sends in flight finish (``grace`` seconds), then close.

        A send still unanswered after the grace period is cut and reported as
        UNCERTAIN (log and ``on_background_result``): none disappears silently.
        """
        if self._closing:
            return
        self._closing = True
        # A send still waiting for its turn never left: stop it now (not sent).
        for task, attempt in list(self._attempts.items()):
            if not attempt.handed_over:
                task.cancel()
        pending = set(self._attempts) | self._background
        if pending:
            grace = self.shutdown_grace if grace is None else grace
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self.limiter.aclose()
        await self._http.aclose()
        self._closed = True

    async def __aenter__(self) -> VortextClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<VortextClient base_url={self.base_url!r} http_library={self.http_library!r}>"

    # -- sends -----------------------------------------------------------------------

    async def _send_attempt(
        self,
        sms: Sms,
        body: bytes,
        max_wait: float | None,
        on_handover: Callable[[], object] | None,
    ) -> SentSms:
        """One attempt, run as its own task so a cancelled caller does not cut it."""
        if self._closing:
            raise ClientClosedError("the client is closing; no new attempts are made")
        if not self.shield_sends:
            return await self._post_sms(sms, body, max_wait, None, on_handover)
        attempt = _Attempt()
        task = asyncio.ensure_future(self._post_sms(sms, body, max_wait, attempt, on_handover))
        self._attempts[task] = attempt
        task.add_done_callback(self._forget_attempt)
        # asyncio.shield(task), with fewer objects per send: the caller waits on a
        # future of its own, so cancelling the caller never reaches the task.
        waiter: asyncio.Future[None] = task.get_loop().create_future()
        wake = functools.partial(_wake, waiter)
        task.add_done_callback(wake)
        try:
            await waiter
            return task.result()
        except asyncio.CancelledError:
            task.remove_done_callback(wake)
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
    ) -> SentSms:
        async with self.limiter.acquire(
            max_wait=max_wait, attempt_timeout=self._attempt_timeout
        ) as permit:
            if attempt is not None:
                attempt.handed_over = True
            if on_handover is not None:
                try:
                    on_handover()
                except Exception:
                    logger.exception("on_handover hook raised")
            try:
                response = await self._http.exchange(
                    self._sms_target, body, extensions=self._extensions
                )
            except TransportError as error:
                if error.certainly_not_sent:
                    permit.refund()
                    raise
                raise UncertainSendError(sms, error) from error
        # The permit settled when the answer was complete; now read it.
        status = response.status_code
        content: bytes = response.content
        if 200 <= status < 300:
            return _read_sent(sms, content)
        refusal = await self._status_error(response, "POST", self._sms_url)
        if refusal.certainly_not_sent:
            raise refusal
        raise UncertainSendError(sms, refusal) from refusal

    def _forget_attempt(self, task: asyncio.Task[SentSms]) -> None:
        del self._attempts[task]

    def _detach(self, sms: Sms, task: asyncio.Task[SentSms]) -> None:
        self._background.add(task)

        def report(done: asyncio.Task[SentSms]) -> None:
            self._background.discard(done)
            self._report_background(_result_of(sms, done))

        task.add_done_callback(report)

    def _report_background(self, result: SendResult) -> None:
        level = logging.INFO if result.outcome is Outcome.SENT else logging.WARNING
        logger.log(
            level,
            "send finished after its caller was cancelled: %s to %s%s",
            result.outcome.value,
            result.sms.phone_number,
            f" (message id {result.message_id})" if result.message_id else f": {result.error}",
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

        target = self._http.prepare("GET", url, self._get_headers)

        async def attempt() -> Answer:
            response = await self._http.exchange(target, extensions=self._extensions)
            if 200 <= response.status_code < 300:
                return response
            raise await self._status_error(response, "GET", url)

        return await call_with_retries(
            attempt,
            operation="read",
            policy=retry if retry is not None else self.retry,
            clock=self._clock,
            on_retry=self._on_retry,
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


def _attempt_seconds(timeout: Any) -> float:
    """The longest one attempt can take, for a limiter that must bound it."""
    if timeout is None:
        return sum(DEFAULT_TIMEOUT.values())
    if isinstance(timeout, (int, float)):
        return 4 * float(timeout)
    parts = [getattr(timeout, name, None) for name in ("connect", "read", "write", "pool")]
    total = 0.0
    for part in parts:
        if part is None:
            return 3600.0  # no bound: a long one
        total += float(part)
    return total


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(
            f"base_url must be an http(s) URL such as {_api.INTERNET_BASE_URL!r}, not {url!r}"
        )
    if parts.username or parts.password:
        raise ConfigurationError("base_url must not contain credentials; pass username/password")
    return url.rstrip("/")


def _read_sent(sms: Sms, content: bytes) -> SentSms:
    """A 2xx answer to a send: the message id, or an uncertain send if there is none."""
    what = "the answer to POST /sms"
    try:
        sent = structure(decode(content, what), SentSms, body=content, what=what)
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
