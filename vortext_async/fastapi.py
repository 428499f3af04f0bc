"""FastAPI integration: one shared client per app, fail-fast sends, clean shutdown.

Install with ``pip install 'vortext-async[fastapi]'``::

    from fastapi import FastAPI
    from vortext_async.fastapi import VortextClientDep, install_error_handlers, vortext_lifespan

    app = FastAPI(lifespan=vortext_lifespan(max_wait=2.0))
    install_error_handlers(app)

    @app.post("/notify")
    async def notify(phone: str, text: str, client: VortextClientDep) -> dict[str, str]:
        sent = await client.send_sms(phone, text)
        return {"messageId": sent.message_id}

The client is created when the app starts (credentials, base URL and, if set,
``VORTEXT_REDIS_URL`` from the environment), reachable as a dependency and as
``request.app.state.vortext_client``, and closed when the app stops: new sends are
refused, sends in flight get ``shutdown_grace`` seconds, and any that do not finish
are reported as UNCERTAIN.  Nothing is created at import time.

Shutdown: every caller gets an answer
-------------------------------------

A server's graceful shutdown waits for the requests in progress before it runs the
lifespan's shutdown (uvicorn: ``Server.shutdown`` closes the listening sockets, waits
for the connections up to ``--timeout-graceful-shutdown``, cancels what is left,
and only then sends ``lifespan.shutdown``).  A request whose send waits for a
rate-limit token would hold the server until that timeout and then be cancelled:
a 500 with a ``CancelledError`` traceback, for an SMS that never went out.  So the
client is drained when shutdown *starts*, not when the lifespan ends:

- sends still waiting for a token stop at once as not sent
  (:class:`~vortext_async.ClientClosedError`, answered ``503`` with ``Retry-After``
  by :func:`install_error_handlers`), and new sends are refused the same way;
- so do sends sleeping between two attempts (after a ``503``, a ``429`` or a failed
  connection), unless an earlier attempt may have been accepted (opted-in
  ``retry_uncertain_sends``): those end UNCERTAIN (``502``, logged);
- sends already handed to the transport keep running for the client's
  ``shutdown_grace``, capped by the server's graceful timeout when it can be read
  (uvicorn's ``timeout_graceful_shutdown``, less half a second), so they end before
  the server gives up on them: answered, or cut and reported UNCERTAIN (``502``,
  logged) in the request that made them, never a cancelled request with a traceback;
- once those have settled the client is closed (reads then get
  ``ClientClosedError`` too); the lifespan's shutdown waits for that same drain.

*How the start is seen.*  While the lifespan starts, for ``SIGTERM`` and ``SIGINT``
(and ``SIGBREAK`` on Windows) whose current handler is a Python callable installed by
the server, a handler is chained in front of it: it schedules the drain on the
app's event loop (``call_soon_threadsafe``) and calls the server's handler, which
goes on as before.  Uvicorn (every release since 0.29, so all that the ``fastapi``
extra allows) installs ``Server.handle_exit`` with ``signal.signal`` around the whole
of ``Server.serve``, before the lifespan starts, and restores the previous handlers
after it; this holds for ``uvicorn.run``, the ``uvicorn`` CLI (also each worker of
``--workers N`` and ``--reload``, which are stopped with ``SIGTERM``) and gunicorn's
uvicorn workers (the arbiter stops a worker with ``SIGTERM``).  A server that uses
``loop.add_signal_handler`` keeps working too: its wakeup fd still fires.  The
chained handler is removed when the lifespan ends if it is still in place.

Watching ``server.should_exit`` would need the ``Server`` object, which an app is not
given; ASGI has no "server stopping" event for HTTP requests; the lifespan's
shutdown comes too late.  A signal is what every way of running uvicorn shares.

*Limits.*  Nothing is chained when the lifespan does not run in the main thread (only
it may set signal handlers; uvicorn then installs none either), when a signal has no
Python handler (the default action, ``SIG_IGN``, Python's ``default_int_handler``: no
server is shutting down gracefully), or with ``drain_on_signals=False``.  A shutdown
started without a signal (``server.should_exit = True`` set by code, uvicorn's
``--limit-max-requests``, a server that is not signal driven) is not seen: call
:func:`vortext_shutdown` when it starts.  Sends made with ``shield_sends=False``
are not tracked by the client and are not stopped early.
Under gunicorn (which sets no uvicorn graceful timeout) keep ``shutdown_grace``
below ``--graceful-timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import FrameType
from typing import Annotated, Any, TypeAlias, TypeVar, Unpack, cast

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as _error:
    if (_error.name or "").partition(".")[0] not in {"fastapi", "starlette", "pydantic"}:
        raise
    # A module cannot fail "at construction": its import is the first use, so the
    # clear error is an ImportError naming the pip line (as `vortext` does for `cli`).
    raise ModuleNotFoundError(
        f"vortext_async.fastapi needs the 'fastapi' extra ({_error.name} is not installed): "
        "pip install 'vortext-async[fastapi]'",
        name=_error.name,
    ) from _error

from . import (
    ClientClosedError,
    ClientOptions,
    InvalidRequestError,
    LimiterUnavailableError,
    RateLimit,
    RateLimitedError,
    UncertainSendError,
    VortextClient,
    WaitBudgetExceededError,
)

__all__ = [
    "REDIS_URL_ENV",
    "STATE_ATTRIBUTE",
    "CancelOnDisconnect",
    "VortextClientDep",
    "get_vortext_client",
    "install_error_handlers",
    "vortext_lifespan",
    "vortext_shutdown",
]

logger = logging.getLogger("vortext_async.fastapi")

STATE_ATTRIBUTE = "vortext_client"
"""Where the client lives on the app: ``request.app.state.vortext_client``."""
REDIS_URL_ENV = "VORTEXT_REDIS_URL"
"""A Redis URL here makes every worker of the app share the account's caps."""
_DRAIN_ATTRIBUTE = "vortext_drain"

State = TypeVar("State")
"""What a lifespan yields: ``None``, or the state it gives the requests (a mapping)."""
Lifespan: TypeAlias = Callable[[FastAPI], AbstractAsyncContextManager[State]]
"""A lifespan of ``FastAPI(lifespan=...)`` that yields a ``State``."""

# ASGI as the code inside reads it (Starlette's types).
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]

# What ``__call__`` declares: values of any type, as the ASGI server gives them (the
# server's own ``Any`` types accept it); the code inside reads them as ``_Scope``.
Scope = MutableMapping[str, object]
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def vortext_lifespan(
    *,
    redis_url: str | None = None,
    lifespan: Lifespan[State] | None = None,
    client_factory: Callable[[], VortextClient] | None = None,
    drain_on_signals: bool = True,
    **client_options: Unpack[ClientOptions],
) -> Lifespan[State]:
    """A lifespan for ``FastAPI(lifespan=...)`` owning one :class:`VortextClient`.

    ``rate_limit=`` (in ``client_options``) is the account's caps, or a limiter of
    your own.  With ``redis_url`` (or ``VORTEXT_REDIS_URL``) and a :class:`RateLimit`,
    the caps are kept in Redis, shared by every worker process (keyed by the
    account's username).

    Args:
        redis_url: the Redis holding the shared caps.
        lifespan: your own lifespan, entered inside this one, so the client is there
            before your startup code and closed after your shutdown code.
        client_factory: builds the client yourself instead.
        drain_on_signals: drain the client as soon as the server's shutdown starts
            (``SIGTERM``/``SIGINT``; see the module's docs).  False: only when the
            lifespan ends, or when :func:`vortext_shutdown` is called.
        **client_options: go to the client (``rate_limit``, ``max_wait``,
            ``shutdown_grace``, ``on_background_result``...): any
            :class:`~vortext_async.ClientOptions`.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[State]:
        if client_factory is not None:
            client = client_factory()
        else:
            client = _build(redis_url, client_options)
        setattr(app.state, STATE_ATTRIBUTE, client)
        drain = _Drain(client, asyncio.get_running_loop())
        setattr(app.state, _DRAIN_ATTRIBUTE, drain)
        if drain_on_signals:
            drain.chain_signals()
        try:
            if lifespan is None:
                # No lifespan of yours: no state (``State`` is then unsolved for a
                # checker, which FastAPI takes as a lifespan yielding None).
                yield cast(State, None)
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            drain.unchain_signals()
            await drain.wait()

    return run


async def vortext_shutdown(app: FastAPI, *, grace: float | None = None) -> None:
    """Drain the app's client now, as the start of a server's shutdown does.

    For servers whose shutdown this module does not see (see the module's docs):
    call it when shutdown starts.  Sends waiting for a rate-limit token or sleeping
    before a retry stop at once as not sent (``503`` with ``Retry-After`` to their
    callers), new sends are refused, and sends in flight get ``grace`` seconds
    (default: the client's ``shutdown_grace``) before they are cut and reported
    UNCERTAIN.  Returns once
    every send has settled and the client is closed.  Calling it again, or
    concurrently, waits for the same drain.
    """
    drain = getattr(app.state, _DRAIN_ATTRIBUTE, None)
    if not isinstance(drain, _Drain):
        raise RuntimeError(
            "no VortextClient on this app: create the app with "
            "FastAPI(lifespan=vortext_lifespan(...))"
        )
    await drain.wait(grace)


_SignalHandler = Callable[[int, FrameType | None], Any]

_CUT_MARGIN = 0.5
"""How long before the server's graceful timeout the sends still in flight are cut."""

_SHUTDOWN_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
"""What a server's graceful shutdown starts with (uvicorn's ``HANDLED_SIGNALS``)."""


class _Drain:
    """A client's close, started once: by a shutdown signal, a call, or the lifespan.

    The client's ``aclose()`` itself waits for a close already under way, so a close
    started by the app's own code is waited for too; the drain keeps its own task
    because a signal handler cannot await, and so the first start's ``grace`` (the
    server's graceful timeout, for a signal) is the one the close uses.
    """

    def __init__(self, client: VortextClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.server_grace: float | None = None  # the server's own graceful timeout
        self._task: asyncio.Task[None] | None = None
        self._chained: dict[int, tuple[_SignalHandler, _SignalHandler]] = {}

    def start(self, grace: float | None = None) -> asyncio.Task[None]:
        """Stop queued sends now; give sends in flight ``grace`` seconds (once)."""
        if self._task is None:
            if grace is None:
                grace = self.client.shutdown_grace
            logger.info(
                "shutdown started: sends waiting for the rate limit are stopped (not sent), "
                "sends in flight get %.3g s",
                grace,
            )
            self._task = self.loop.create_task(self.client.aclose(grace=grace))
        return self._task

    async def wait(self, grace: float | None = None) -> None:
        # Shielded: a cancelled caller does not cut the drain others wait for.
        await asyncio.shield(self.start(grace))

    def _on_shutdown_signal(self) -> None:
        grace = self.client.shutdown_grace
        if self.server_grace is not None:
            grace = min(grace, self.server_grace)
        self.start(grace)

    def chain_signals(self) -> None:
        """Put a handler that starts the drain in front of the server's own."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers (uvicorn sets none then)
        for signum in _SHUTDOWN_SIGNALS:
            previous = signal.getsignal(signum)
            if not callable(previous) or previous is signal.default_int_handler:
                continue  # no server shuts down gracefully on it: leave it alone
            server_grace = _graceful_timeout(previous)
            if server_grace is not None:
                self.server_grace = server_grace

            def on_signal(
                signum: int, frame: FrameType | None, server: _SignalHandler = previous
            ) -> None:
                # Runs in the main thread between two bytecodes, maybe inside the
                # loop's own code: only schedule the drain here.
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    self.loop.call_soon_threadsafe(self._on_shutdown_signal)
                server(signum, frame)

            signal.signal(signum, on_signal)
            self._chained[signum] = (on_signal, previous)

    def unchain_signals(self) -> None:
        """Give the server its handlers back, unless someone replaced ours since."""
        for signum, (ours, previous) in self._chained.items():
            if signal.getsignal(signum) is ours:
                signal.signal(signum, previous)
        self._chained.clear()


def _graceful_timeout(handler: _SignalHandler) -> float | None:
    """How long sends in flight may run when ``handler`` is uvicorn's ``Server.handle_exit``.

    Its ``timeout_graceful_shutdown`` less half a second (or half of it, when shorter
    than a second).  Read by duck typing: any other handler, or a missing or unset
    value (uvicorn's default: wait as long as it takes), gives None.
    """
    config = getattr(getattr(handler, "__self__", None), "config", None)
    timeout = getattr(config, "timeout_graceful_shutdown", None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        return None
    # End a little before the server gives up, so the answers are written by then.
    return float(timeout) - min(_CUT_MARGIN, float(timeout) / 2)


def _build(redis_url: str | None, options: ClientOptions) -> VortextClient:
    redis_url = redis_url or os.environ.get(REDIS_URL_ENV)
    rate_limit = options.get("rate_limit")
    if redis_url and isinstance(rate_limit, RateLimit):
        from . import RedisRateLimiter

        username = options.get("username") or os.environ.get("VORTEXT_USERNAME") or "default"
        options = {
            **options,
            "rate_limit": RedisRateLimiter(rate_limit, redis_url, account=username),
        }
    return VortextClient(**options)


def get_vortext_client(request: Request) -> VortextClient:
    """The app's shared client (a FastAPI dependency)."""
    client = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if client is None:
        raise RuntimeError(
            "no VortextClient on this app: create the app with "
            "FastAPI(lifespan=vortext_lifespan(...))"
        )
    return client  # type: ignore[no-any-return]


VortextClientDep = Annotated[VortextClient, Depends(get_vortext_client)]
"""``client: VortextClientDep`` in an endpoint's parameters gives the shared client."""


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def install_error_handlers(app: FastAPI) -> None:
    """Answer the app's own callers well when a send cannot be made now.

    - the wait budget ran out (:class:`WaitBudgetExceededError`): ``429`` with
      ``Retry-After`` set to the limiter's expected wait;
    - Vortext itself refused (:class:`RateLimitedError`): ``503`` with its ``Retry-After``;
    - the client is shutting down, or the shared limiter is unreachable: ``503`` with
      ``Retry-After: 5``;
    - the send is uncertain (:class:`UncertainSendError`): ``502`` without
      ``Retry-After`` (a retry could reach the person twice), logged;
    - bad input (:class:`InvalidRequestError`): ``422`` naming the field.
    """

    async def budget(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, WaitBudgetExceededError)
        return JSONResponse(
            {"detail": "SMS rate limit reached; retry later", "retryAfter": error.expected_wait},
            status_code=429,
            headers=_retry_after(error.expected_wait),
        )

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RateLimitedError)
        return JSONResponse(
            {"detail": "the SMS gateway is rate limiting; retry later"},
            status_code=503,
            headers=_retry_after(error.retry_after if error.retry_after is not None else 1.0),
        )

    async def unavailable(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "SMS sending is unavailable right now; retry later"},
            status_code=503,
            headers=_retry_after(5.0),
        )

    async def uncertain(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, UncertainSendError)
        logger.warning("send uncertain (not retried): %s", error)
        return JSONResponse(
            {"detail": "the SMS may or may not have been sent; it is not retried"},
            status_code=502,
        )

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, InvalidRequestError)
        return JSONResponse(
            {"detail": f"invalid {error.field}: {error.reason}", "field": error.field},
            status_code=422,
        )

    app.add_exception_handler(WaitBudgetExceededError, budget)
    app.add_exception_handler(RateLimitedError, refused)
    app.add_exception_handler(ClientClosedError, unavailable)
    app.add_exception_handler(LimiterUnavailableError, unavailable)
    app.add_exception_handler(UncertainSendError, uncertain)
    app.add_exception_handler(InvalidRequestError, invalid)


class CancelOnDisconnect:
    """ASGI middleware: cancel a request's handling when its caller hangs up.

    ASGI servers keep running an endpoint whose client went away; this middleware
    cancels it instead (``app.add_middleware(CancelOnDisconnect)``).  A send already
    handed to the transport is not abandoned (the client's ``shield_sends``): it
    finishes in the background and its outcome goes to the log and to
    ``on_background_result``.  A send still waiting for a token is dropped, unsent.
    Once the response is complete nothing is cancelled (background tasks run on).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[_Message] = asyncio.Queue(maxsize=1)  # one message read ahead
        responded = False
        hung_up = False

        async def app_receive() -> _Message:
            if hung_up and inbox.empty():
                return {"type": "http.disconnect"}
            return await inbox.get()

        async def app_send(message: _Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                responded = True
            await send(message)

        handler: asyncio.Future[None] = asyncio.ensure_future(
            self.app(scope, app_receive, app_send)
        )

        async def listen() -> None:
            nonlocal hung_up
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    hung_up = True
                    if not responded and not handler.done():
                        logger.debug("caller of %s hung up: cancelling", scope.get("path"))
                        handler.cancel()
                    with contextlib.suppress(asyncio.QueueFull):
                        inbox.put_nowait(message)
                    return
                await inbox.put(message)

        listener = loop.create_task(listen())
        try:
            await handler
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not hung_up or (current is not None and current.cancelling()):
                raise  # the server cancelled us, not the caller's hang-up
        finally:
            listener.cancel()
            handler.cancel()  # a no-op unless we were cancelled meanwhile
