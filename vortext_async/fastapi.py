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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from . import (
    ClientClosedError,
    InvalidRequestError,
    LimiterUnavailableError,
    RateLimit,
    RateLimitedError,
    UncertainSendError,
    VortextClient,
    WaitBudgetExceededError,
)

if TYPE_CHECKING:
    from . import Limiter

__all__ = [
    "REDIS_URL_ENV",
    "STATE_ATTRIBUTE",
    "CancelOnDisconnect",
    "VortextClientDep",
    "get_vortext_client",
    "install_error_handlers",
    "vortext_lifespan",
]

logger = logging.getLogger("vortext_async.fastapi")

STATE_ATTRIBUTE = "vortext_client"
"""Where the client lives on the app: ``request.app.state.vortext_client``."""
REDIS_URL_ENV = "VORTEXT_REDIS_URL"
"""A Redis URL here makes every worker of the app share the account's caps."""

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

# ASGI, typed as Starlette types it, so ``app.add_middleware(CancelOnDisconnect)`` checks.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def vortext_lifespan(
    *,
    rate_limit: RateLimit | Limiter | None = None,
    redis_url: str | None = None,
    lifespan: Lifespan | None = None,
    client_factory: Callable[[], VortextClient] | None = None,
    **client_options: Any,
) -> Lifespan:
    """A lifespan for ``FastAPI(lifespan=...)`` owning one :class:`VortextClient`.

    ``client_options`` go to the client (``max_wait``, ``shutdown_grace``,
    ``on_background_result``...).  With ``redis_url`` (or ``VORTEXT_REDIS_URL``) and a
    :class:`RateLimit`, the caps are kept in Redis, shared by every worker process
    (keyed by the account's username).  ``lifespan`` is your own lifespan, entered
    inside this one, so the client is there before your startup code and closed
    after your shutdown code.  ``client_factory`` builds the client yourself instead.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        if client_factory is not None:
            client = client_factory()
        else:
            client = _build(rate_limit, redis_url, client_options)
        setattr(app.state, STATE_ATTRIBUTE, client)
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            await client.aclose()

    return run


def _build(
    rate_limit: RateLimit | Limiter | None, redis_url: str | None, options: dict[str, Any]
) -> VortextClient:
    redis_url = redis_url or os.environ.get(REDIS_URL_ENV)
    if redis_url and isinstance(rate_limit, RateLimit):
        from . import RedisRateLimiter

        username = options.get("username") or os.environ.get("VORTEXT_USERNAME") or "default"
        rate_limit = RedisRateLimiter(rate_limit, redis_url, account=username)
    return VortextClient(rate_limit=rate_limit, **options)


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
        inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)  # one message read ahead
        responded = False
        hung_up = False

        async def app_receive() -> Message:
            if hung_up and inbox.empty():
                return {"type": "http.disconnect"}
            return await inbox.get()

        async def app_send(message: Message) -> None:
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
