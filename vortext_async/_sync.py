"""The blocking client: the asyncio client driven from a loop in a thread of its own.

Each :class:`VortextClient` owns one event loop running in a daemon thread, and one
asyncio client living on that loop.  A blocking call hands its coroutine to that loop
and waits for the answer; an exception is re-raised in the caller's thread as it
was raised (same class, same attributes).  Any number of threads may share one
client: their calls run concurrently on its loop, under the same rate limiter.

The calls are declared once, from the asyncio client's methods (:func:`_blocking`):
their parameters and return types are the asyncio client's, checked by mypy.  Only
the constructor is written out, since type checkers cannot take a constructor's
parameters from another one; a test checks that both constructors agree.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import queue
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeVar

from . import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_MESSAGE_LENGTH,
    BulkSummary,
    ClientClosedError,
    Clock,
    Limiter,
    RateLimit,
    RetryEvent,
    RetryPolicy,
    SendResult,
    SentSms,
    Sms,
    SyncInEventLoopError,
)
from . import (
    BulkJob as AsyncBulkJob,
)
from . import (
    VortextClient as AsyncVortextClient,
)

if TYPE_CHECKING:
    # The types only (aliases naming httpx's and httpx2's classes): nothing imported.
    from ._http import (
        Cert,
        HttpClient,
        HttpLibrary,
        HttpLimits,
        HttpTimeout,
        HttpTransport,
        ProxyUrl,
        Verify,
    )

__all__ = ["BulkJob", "VortextClient"]

logger = logging.getLogger("vortext_async")

P = ParamSpec("P")
T = TypeVar("T")


class _Redacted(str):
    """The password, whose ``repr`` hides it in the frames error reporters record.

    The asyncio client does the same with its own ``SecretStr`` (in the HTTP layer,
    which this module, on the public names only, does not import).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def _refuse_in_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SyncInEventLoopError(
        f"vortext_async.sync: {what} blocks, and it was called from a running event loop "
        "(an async function, or a callback on the client's own loop); await the asyncio "
        "client vortext_async.VortextClient there, or run this call in a worker thread "
        "(await asyncio.to_thread(...))"
    )


class _LoopThread:
    """One event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="vortext-sync-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait; Ctrl-C cancels it and is re-raised."""
        future = self.submit(coroutine)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join()


def _shut_down(runner: _LoopThread, client: AsyncVortextClient, grace: float | None) -> None:
    """Close ``client`` on its loop (sends in flight get their grace), stop the loop."""
    try:
        if threading.current_thread() is not runner.thread and not runner.loop.is_closed():
            runner.run(client.aclose(grace=grace))
    finally:
        runner.stop()


def _own(function: Callable[..., object], method: Callable[..., object]) -> None:
    """Make a twin this module's own: the method's signature, not an alias of it."""
    function.__module__ = __name__
    function.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    del function.__wrapped__  # type: ignore[attr-defined]


def _blocking(
    method: Callable[Concatenate[AsyncVortextClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[VortextClient, P], T]:
    """The blocking twin of an asyncio client method: same parameters, same result."""

    @functools.wraps(method)
    def call(self: VortextClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        _refuse_in_event_loop(f"VortextClient.{method.__name__}()")
        client = self._client_or_raise()
        return self._runner.run(method(client, *args, **kwargs))

    _own(call, method)
    return call


def _blocking_send(
    method: Callable[Concatenate[AsyncVortextClient, P], Coroutine[Any, Any, SentSms]],
) -> Callable[Concatenate[VortextClient, P], SentSms]:
    """The blocking twin of ``send`` or ``send_sms``, honest about Ctrl-C.

    Both go through the asyncio client's ``send`` with an ``on_handover`` hook, so an
    interrupted call can say whether its SMS may have left.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(self: VortextClient, /, *args: P.args, **kwargs: P.kwargs) -> SentSms:
        _refuse_in_event_loop(f"VortextClient.{method.__name__}()")
        client = self._client_or_raise()
        arguments = signature.bind(client, *args, **kwargs).arguments
        del arguments["self"]
        if "sms" in arguments:
            sms: Sms = arguments.pop("sms")
        else:
            sms = Sms(
                arguments.pop("phone_number"),
                arguments.pop("message"),
                metadata=arguments.pop("metadata", None),
            )
        return _send_interruptibly(self._runner, client, sms, arguments)

    _own(call, method)
    return call


def _send_interruptibly(
    runner: _LoopThread, client: AsyncVortextClient, sms: Sms, options: dict[str, Any]
) -> SentSms:
    # Both only change on the loop's thread: a request out now, and whether an attempt
    # that ended may have been accepted (a 429 or a refused connection was not).
    out = False
    maybe_accepted = False
    callers_handover = options.pop("on_handover", None)
    callers_settled = options.pop("on_settled", None)

    def on_handover() -> None:
        nonlocal out
        out = True
        if callers_handover is not None:
            callers_handover()

    def on_settled(possibly_accepted: bool) -> None:
        nonlocal out, maybe_accepted
        out = False
        maybe_accepted = maybe_accepted or possibly_accepted
        if callers_settled is not None:
            callers_settled(possibly_accepted)

    finished = threading.Event()
    started = False

    async def send() -> SentSms:
        nonlocal started
        started = True
        try:
            return await client.send(sms, on_handover=on_handover, on_settled=on_settled, **options)
        finally:
            finished.set()

    future = runner.submit(send())
    try:
        return future.result()
    except KeyboardInterrupt as interrupt:
        # Decide on the loop's thread, where handovers happen: no race with one.
        def stop() -> tuple[bool, bool]:
            future.cancel()
            if not started:  # cancelled before its first step: its finally never runs
                finished.set()
            return out, maybe_accepted

        decided: concurrent.futures.Future[tuple[bool, bool]] = concurrent.futures.Future()
        runner.loop.call_soon_threadsafe(lambda: decided.set_result(stop()))
        request_out, earlier_maybe_accepted = decided.result()
        finished.wait()  # the send has unwound: stopped, or detached to the background
        if earlier_maybe_accepted and not request_out:
            note = (
                "vortext_async: this SMS MAY HAVE BEEN SENT: an earlier attempt may have "
                "been accepted (it got no clear answer), and its retry was stopped"
            )
        elif request_out:
            if client.shield_sends:
                note = (
                    "vortext_async: this SMS MAY HAVE BEEN SENT: its request had been handed "
                    "to the transport when the call was interrupted; the client finishes it "
                    "in the background and reports its outcome to the 'vortext_async' logger "
                    "and to on_background_result (close() waits shutdown_grace for it)"
                )
            else:
                note = (
                    "vortext_async: this SMS MAY HAVE BEEN SENT: its request had been handed "
                    "to the transport when the call was interrupted, and was cut "
                    "(shield_sends=False): its outcome is uncertain"
                )
        else:
            note = (
                "vortext_async: this SMS was NOT sent: it was still waiting (for the rate "
                "limit or a retry) when the call was interrupted, and was stopped"
            )
        interrupt.add_note(note)
        logger.warning("a blocking send was interrupted (Ctrl-C): %s", note.split(": ", 1)[1])
        raise


def _blocking_bulk(
    method: Callable[Concatenate[AsyncVortextClient, P], AsyncBulkJob],
) -> Callable[Concatenate[VortextClient, P], BulkJob]:
    """The blocking twin of ``send_bulk``: same parameters, a job iterated with ``for``."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def send_bulk(self: VortextClient, /, *args: P.args, **kwargs: P.kwargs) -> BulkJob:
        _refuse_in_event_loop("VortextClient.send_bulk()")
        client = self._client_or_raise()
        arguments = signature.bind(client, *args, **kwargs).arguments
        options: dict[str, Any] = {}
        for name, value in arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                options.update(value)
            elif name not in ("self", "messages"):
                options[name] = value
        messages = arguments["messages"]
        return BulkJob._start(
            self._runner, messages, lambda source: client.send_bulk(source, **options)
        )

    _own(send_bulk, method)
    send_bulk.__doc__ = """Send many messages at the account's pace; iterate the job for results.

        ``for result in client.send_bulk(messages, concurrency=64, journal=path)``
        yields one :class:`vortext_async.SendResult` per message, as each finishes;
        ``job.summary`` holds the counts.  The options are those of
        :func:`vortext_async.send_bulk`.  ``messages`` is read in the calling thread
        (a Django queryset or a CSV reader is fine), lazily, as send slots free up.
        Use ``with client.send_bulk(...) as job:`` so that leaving the block early
        stops the job (the same stop as the asyncio job's ``aclose()``).
        """
    return send_bulk


class VortextClient:
    """A blocking Vortext client, for scripts, Django views and Celery tasks.

    The same constructor arguments and the same calls as the asyncio
    :class:`vortext_async.VortextClient`, without ``await``; the same guarantees
    (rate limits, safe retries, sent / not sent / uncertain) and the same errors,
    raised in the calling thread with their original class.  Use it as a context
    manager, or call :meth:`close`.

    The client runs an event loop in a daemon thread of its own; any number of
    threads may share one client (their sends share its rate limiter).  Callbacks
    (``on_retry``, ``on_background_result``, ``on_progress``) run on that loop's
    thread.  Called from inside a running event loop, every blocking call raises
    :class:`vortext_async.SyncInEventLoopError`.

    Ctrl-C during a send re-raises ``KeyboardInterrupt`` with a note saying whether
    the SMS was not sent (it was still waiting) or may have been sent (its request
    had left; it finishes in the background and its outcome is logged).

    Args:
        username: the account's username (default: ``VORTEXT_USERNAME``).
        password: the account's password (default: ``VORTEXT_PASSWORD``).
        base_url: the API's base URL (default: ``VORTEXT_BASE_URL``, then
            :data:`vortext_async.INTERNET_BASE_URL`).
        timeout: seconds, or an httpx ``Timeout``.
        rate_limit: the account's caps, or a limiter shared with other clients.
        retry: what to retry and how long to wait.
        max_wait: default wait budget of a send, in seconds.
        strict_phone_numbers: require E.164 phone numbers.
        max_message_length: the longest message text sent, in characters.
        log_phone_numbers: show phone numbers whole in log lines (default: masked,
            unless ``VORTEXT_LOG_PHONE_NUMBERS`` is set).
        shield_sends: a send whose request left finishes even if its caller stops.
        shutdown_grace: seconds :meth:`close` lets sends in flight finish.
        on_retry: called on the client's loop thread before each retry.
        on_background_result: called on the client's loop thread with the outcome of
            a send whose caller stopped waiting.
        http_client: an ``httpx.AsyncClient`` or ``httpx2.AsyncClient`` to use.
        http_library: ``"auto"``, ``"httpx"`` or ``"httpx2"``.
        transport: what carries the requests: ``"auto"`` (the direct aiohttp path),
            ``"aiohttp"``, ``"httpx"`` (httpcore) or a transport object.
        limits: connection pool limits of the client built here.
        proxy: a proxy for every request (its credentials never shown).
        verify: TLS verification: True (certifi's CA bundle), a CA bundle path, an
            ``ssl.SSLContext``, or False.
        cert: a client certificate (a PEM file, or certificate and key files).
        trust_env: read the proxies (``HTTPS_PROXY``, ``NO_PROXY``...) from the environment.
        clock: the clock and sleep of the limiter and the retries.
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
        max_message_length: int = MAX_MESSAGE_LENGTH,
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
        options = {
            name: value
            for name, value in locals().items()
            if name not in ("self", "username", "password", "__class__")
        }
        if password:  # a frame of a failed construction shows '<redacted>'
            password = _Redacted(password)
        if proxy is not None:  # its credentials too
            options["proxy"] = proxy = _Redacted(str(proxy))

        async def build() -> AsyncVortextClient:
            return AsyncVortextClient(username, password, **options)

        runner = _LoopThread()
        try:
            client = runner.run(build())
        except BaseException:
            runner.stop()
            raise
        self._runner: Final = runner
        self._client: AsyncVortextClient | None = client
        self._async_client: Final = client
        self._closer = weakref.finalize(self, _shut_down, runner, client, None)

    # -- the calls ---------------------------------------------------------------------

    status = _blocking(AsyncVortextClient.status)
    """``GET /status``: see [`VortextClient.status`][vortext_async.VortextClient.status]."""
    get_sms = _blocking(AsyncVortextClient.get_sms)
    """``GET /sms/{id}``: see [`VortextClient.get_sms`][vortext_async.VortextClient.get_sms]."""
    send_sms = _blocking_send(AsyncVortextClient.send_sms)
    """Send one SMS: see [`VortextClient.send_sms`][vortext_async.VortextClient.send_sms]."""
    send = _blocking_send(AsyncVortextClient.send)
    """Send an ``Sms``: see [`VortextClient.send`][vortext_async.VortextClient.send]."""

    send_bulk = _blocking_bulk(AsyncVortextClient.send_bulk)
    """Send many messages: a [`BulkJob`][vortext_async.sync.BulkJob] iterated with ``for``.

    The parameters of [`VortextClient.send_bulk`][vortext_async.VortextClient.send_bulk].
    ``messages`` is read in the calling thread, lazily; use ``with`` so that leaving the
    block early stops the job.
    """

    # -- state and shutdown ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._async_client.base_url

    @property
    def http_library(self) -> str:
        """Which library carries the requests: ``"httpx"`` or ``"httpx2"``."""
        return self._async_client.http_library

    @property
    def limiter(self) -> Limiter:
        """The rate limiter (its ``state()`` and ``estimated_wait()`` are safe to read)."""
        return self._async_client.limiter

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has started: new calls are refused."""
        return self._client is None or self._async_client.closed

    def close(self, *, grace: float | None = None) -> None:
        """Refuse new sends, let sends in flight finish (``grace`` seconds), stop the loop.

        As the asyncio client's ``aclose()``: a send still unanswered after the grace
        period is reported UNCERTAIN, none disappears silently.  Safe to call twice.
        A client never closed is closed when the interpreter exits.
        """
        _refuse_in_event_loop("VortextClient.close()")
        self._client = None
        if self._closer.alive:
            self._closer.detach()
            _shut_down(self._runner, self._async_client, grace)

    def __enter__(self) -> VortextClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if not hasattr(self, "_async_client"):
            return "<sync VortextClient (not built)>"  # a frame of a failed __init__ shows it
        return f"<sync VortextClient base_url={self.base_url!r} http_library={self.http_library!r}>"

    def _client_or_raise(self) -> AsyncVortextClient:
        client = self._client
        if client is None:
            raise ClientClosedError("the client is closed; no new calls are accepted")
        return client


class _Done:
    """The caller's input is exhausted."""


_DONE: Final = _Done()


class BulkJob:
    """A running bulk send of the blocking client: iterate it for one result per message.

    ``for result in job`` yields a :class:`vortext_async.SendResult` per message as
    each finishes; :attr:`summary` is final once the iteration (or :meth:`close`)
    has ended.  ``with`` closes it on exit.  Ctrl-C while waiting for a result stops
    the job (messages still waiting for the rate limit end FAILED, sends in flight get
    ``grace`` seconds) and re-raises ``KeyboardInterrupt`` with the summary in a note.

    Made by :meth:`VortextClient.send_bulk`; it cannot be built directly.
    """

    def __init__(self) -> None:
        raise TypeError(
            "a blocking BulkJob is made by vortext_async.sync.VortextClient.send_bulk()"
        )

    @classmethod
    def _start(
        cls,
        runner: _LoopThread,
        messages: Iterable[Sms] | AsyncIterable[Sms],
        begin: Callable[[Iterable[Sms] | AsyncIterable[Sms]], AsyncBulkJob],
    ) -> BulkJob:
        """Start ``begin(source)`` (the asyncio job) on ``runner``'s loop, fed ``messages``."""
        job = cls.__new__(cls)
        job._begin(runner, messages, begin)
        return job

    def _begin(
        self,
        runner: _LoopThread,
        messages: Iterable[Sms] | AsyncIterable[Sms],
        begin: Callable[[Iterable[Sms] | AsyncIterable[Sms]], AsyncBulkJob],
    ) -> None:
        self._runner = runner
        # The loop asks the caller's thread for each message: (future for the answer).
        self._requests: queue.SimpleQueue[
            tuple[str, asyncio.Future[Sms | _Done] | concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._input: Iterator[Sms] | None = None
        source: Iterable[Sms] | AsyncIterable[Sms]
        if isinstance(messages, (AsyncIterable, str, bytes)):
            source = messages  # read on the loop; the asyncio job checks the type
        else:
            self._input = iter(messages) if isinstance(messages, Iterable) else None
            source = self._fed() if self._input is not None else messages

        async def start() -> tuple[AsyncBulkJob, AsyncIterator[SendResult]]:
            job = begin(source)
            return job, aiter(job)

        self._job, self._results = runner.run(start())
        self._ended = False

    async def _fed(self) -> AsyncIterator[Sms]:
        loop = asyncio.get_running_loop()
        while True:
            answer: asyncio.Future[Sms | _Done] = loop.create_future()
            self._requests.put(("need", answer))
            message = await answer
            if isinstance(message, _Done):
                return
            yield message

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        """Wait for ``future`` while feeding the loop the messages it asks for."""
        future.add_done_callback(lambda done: self._requests.put(("done", done)))
        while True:
            kind, item = self._requests.get()
            if kind == "done":
                if item is future:
                    return future.result()
                continue
            assert isinstance(item, asyncio.Future)
            self._answer(item)

    def _answer(self, request: asyncio.Future[Sms | _Done]) -> None:
        loop = self._runner.loop
        if request.done():  # the job stopped meanwhile
            return
        try:
            message: Sms | _Done = next(self._input) if self._input is not None else _DONE
        except StopIteration:
            message = _DONE
        except BaseException as error:
            loop.call_soon_threadsafe(_settle, request, None, error)
            if not isinstance(error, Exception):
                raise
            return
        loop.call_soon_threadsafe(_settle, request, message, None)

    # -- public API ----------------------------------------------------------------

    @property
    def summary(self) -> BulkSummary:
        """Counts so far; final once iteration (or :meth:`close`) has ended."""
        return self._job.summary

    def __iter__(self) -> Iterator[SendResult]:
        return self

    def __next__(self) -> SendResult:
        _refuse_in_event_loop("iterating a BulkJob")
        if self._ended:
            raise StopIteration
        results = self._results

        async def next_result() -> SendResult:
            return await anext(results)

        future = self._runner.submit(next_result())
        try:
            return self._wait(future)
        except StopAsyncIteration:
            self._end()
            raise StopIteration from None
        except KeyboardInterrupt as interrupt:
            future.cancel()
            self.close()
            interrupt.add_note(
                f"vortext_async: the bulk job was stopped: {self.summary}; messages that "
                "were still waiting are FAILED (a rerun with the same journal sends them), "
                "those in flight got the grace period"
            )
            raise
        except BaseException:
            self._end()
            raise

    def close(self) -> None:
        """Stop: read no more input, give sends in flight ``grace`` seconds, close.

        Safe to call more than once.
        """
        _refuse_in_event_loop("BulkJob.close()")
        if not self._runner.loop.is_closed():
            self._wait(self._runner.submit(self._job.aclose()))
        self._end()

    def __enter__(self) -> BulkJob:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._job).replace("<BulkJob", "<sync BulkJob", 1)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        close = getattr(self._input, "close", None)
        if close is not None:
            close()  # a generator's cleanup runs in the caller's thread, as it would


def _settle(
    request: asyncio.Future[Sms | _Done], message: Sms | _Done | None, error: BaseException | None
) -> None:
    if request.done():
        return
    if error is not None:
        request.set_exception(error)
    else:
        assert message is not None
        request.set_result(message)
