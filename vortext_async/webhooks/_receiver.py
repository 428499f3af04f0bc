"""The PUSH parser and receiver behind :mod:`vortext_async.webhooks` (its docstring is the guide).

How it is built: :func:`parse_push` is the one place a body becomes a
:class:`PushResponse` (the converter's strict and lenient fields, errors that name the
field); :class:`PushReceiver` is a bare ASGI callable, so it mounts under any
framework, and keeps every answer it can give as a constant ``_Answer``.  A request
is checked cheapest first (source, path, method, content type, size) and its body read
only up to ``max_body_size``; the source filter lives in ``_net`` and the duplicate
window in ``_dedupe``, each with one job.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import attrs
import cattrs

from vortext_async._clock import Clock, MonotonicClock
from vortext_async._converter import converter, describe_error, format_date
from vortext_async._errors import ConfigurationError, InvalidPushError
from vortext_async._models import PushReply, PushResponse, SmsDetail

from ._dedupe import SeenPushes, push_key
from ._net import Network, SourceFilter, parse_networks

__all__ = [
    "InvalidPushError",
    "PushHandler",
    "PushReceiver",
    "PushReply",
    "PushResponse",
    "SmsDetail",
    "new_path_token",
    "parse_push",
]

logger = logging.getLogger("vortext_async.webhooks")

PushHandler = Callable[[PushResponse], Awaitable[None] | None]
"""What the receiver calls with each new push: a function or a coroutine function."""

# ASGI, typed as Starlette types it, so ``app.mount(path, receiver)`` type-checks.
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

_REASON_HEAD = 200
_REASON_TAIL = 120
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")


def _shorten(text: str) -> str:
    # The wire path of a field comes last: keep the start and the end of a long reason.
    if len(text) <= _REASON_HEAD + _REASON_TAIL:
        return text
    return f"{text[:_REASON_HEAD]} ... {text[-_REASON_TAIL:]}"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def parse_push(body: bytes | str) -> PushResponse:
    """Read a PUSH body as a :class:`PushResponse`, or raise :class:`InvalidPushError`.

    Strict where it matters: a JSON object whose ``response.content`` is a string and
    ``response.answeredAt`` a date (``...+0200``, ``...Z`` or ``...+02:00``).  Lenient
    where the API is silent: ``message`` is the SMS as far as the body describes it,
    and each of its fields (``messageId``, ``phoneNumber``, ``message``, ``metadata``)
    may be absent or null (``None``); the API reference's own example sends
    ``"message": { }``.  A field present with the wrong type (a number for
    ``messageId``, an array for ``metadata``) is still refused.  Unknown fields are kept
    in each record's ``extra``.
    """
    try:
        # Not _converter.decode: it quotes the body (a person's reply) in its message,
        # and a deeply nested body raises RecursionError, which it does not catch.
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise InvalidPushError(_shorten(f"the body is not JSON ({error})")) from None
    if not isinstance(data, dict):
        raise InvalidPushError(f"the body is a JSON {_json_type(data)}, not an object")
    try:
        return converter.structure(data, PushResponse)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as error:
        raise InvalidPushError(_shorten(describe_error(error))) from None


def new_path_token() -> str:
    """A fresh unguessable ``path_token`` (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@attrs.frozen
class _Answer:
    status: int
    body: dict[str, str] | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: _Send, *, head: bool) -> None:
        payload = json.dumps(self.body).encode() if self.body is not None else b""
        headers = [(b"content-length", str(len(payload)).encode()), *self.headers]
        if payload:
            headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else payload})


def _refuse(status: int, error: str, reason: str, *headers: tuple[bytes, bytes]) -> _Answer:
    return _Answer(status, {"error": error, "reason": reason}, headers)


_HANDLED = _Answer(200, {"status": "handled"})
_DUPLICATE = _Answer(200, {"status": "duplicate"})
_NOT_FOUND = _refuse(404, "not_found", "no PUSH receiver at this path")
_FORBIDDEN = _refuse(403, "forbidden", "pushes are not accepted from this source")
_NOT_ALLOWED = _refuse(405, "method_not_allowed", "only POST is accepted", (b"allow", b"POST"))
_HANDLER_FAILED = _refuse(500, "handler_failed", "the push was not handled; try again later")
_TOO_LARGE = object()


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _route_path(scope: _Scope) -> str:
    """The path below where the receiver is mounted (as Starlette computes it)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _is_async(handler: Callable[..., Any]) -> bool:
    # A coroutine function, or an object whose class defines ``async def __call__``.
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


class PushReceiver:
    """An ASGI application that receives Vortext's PUSH replies.

    Each valid POST is read as a :class:`PushResponse` and handed to ``handler`` (a
    function, run in a worker thread so it cannot block the event loop, or a coroutine
    function); the answer is sent once it returned:

    - ``200`` ``{"status": "handled"}``, or ``{"status": "duplicate"}`` for a push
      already handled within ``dedupe_window`` seconds (same message id, content and
      ``answeredAt``): acknowledged, not handed over again.  A push without a message
      id is always handed over: nothing tells a repeat from another person's reply;
    - ``400`` for a body that is not JSON or not a push, ``413`` for a body over
      ``max_body_size`` bytes (refused without reading the rest), ``415`` for a
      content type other than JSON, ``405`` for a method other than POST, each with a
      short JSON ``{"error", "reason"}``;
    - ``404`` when ``path_token`` is set and the path is not ``/<path_token>`` below
      the mount point (without a token, only the mount point itself is served);
    - ``403`` when ``allowed_networks`` is set and the source is outside them.  The
      source is the peer address, or the client named in ``X-Forwarded-For`` when the
      peer is one of ``trusted_proxies`` (off by default);
    - ``500`` when the handler raised: logged on the ``vortext_async.webhooks``
      logger with the message id and ``answeredAt`` (never the content), and not
      remembered, so the sender's retry is handled.

    Checks run in this order: source (403), path (404), method (405), content
    type (415), size (413), shape (400).  ``clock`` measures the dedupe window (a monotonic clock by
    default); ``dedupe_window=0`` turns deduplication off.  At most
    ``dedupe_max_entries`` pushes are remembered (the oldest are forgotten first).
    """

    __slots__ = (
        "_async_handler",
        "_clock",
        "_handler",
        "_in_flight",
        "_path_token",
        "_seen",
        "_sources",
        "dedupe_max_entries",
        "dedupe_window",
        "max_body_size",
    )

    def __init__(
        self,
        handler: PushHandler,
        *,
        max_body_size: int = 64 * 1024,
        path_token: str | None = None,
        allowed_networks: Iterable[str | Network] | None = None,
        trusted_proxies: Iterable[str | Network] = (),
        dedupe_window: float = 300.0,
        dedupe_max_entries: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        if not callable(handler):
            raise ConfigurationError(f"handler must be callable, got {handler!r}")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise ConfigurationError(f"max_body_size must be an int, got {max_body_size!r}")
        if max_body_size < 1:
            raise ConfigurationError(f"max_body_size must be positive, got {max_body_size!r}")
        if path_token is not None and not _TOKEN.fullmatch(path_token):
            # Never quote the token: it is a secret, even a bad one.
            raise ConfigurationError(
                "path_token must be at least 16 URL-safe characters (A-Z a-z 0-9 . _ ~ -); "
                "make one with vortext_async.webhooks.new_path_token()"
            )
        if not (isinstance(dedupe_window, int | float) and math.isfinite(dedupe_window)) or (
            dedupe_window < 0
        ):
            raise ConfigurationError(
                f"dedupe_window must be a finite number of seconds >= 0, got {dedupe_window!r}"
            )
        if isinstance(dedupe_max_entries, bool) or not isinstance(dedupe_max_entries, int):
            raise ConfigurationError(
                f"dedupe_max_entries must be an int, got {dedupe_max_entries!r}"
            )
        if dedupe_max_entries < 1:
            raise ConfigurationError(
                f"dedupe_max_entries must be positive, got {dedupe_max_entries!r}"
            )
        allowed = None
        if allowed_networks is not None:
            allowed = parse_networks(allowed_networks, "allowed_networks")
            if not allowed:
                raise ConfigurationError(
                    "allowed_networks is empty, so every push would be refused; "
                    "pass None to accept pushes from any source"
                )
        self._handler = handler
        self._async_handler = _is_async(handler)
        self.max_body_size = max_body_size
        self._path_token = path_token.encode() if path_token is not None else None
        self._sources = SourceFilter(allowed, parse_networks(trusted_proxies, "trusted_proxies"))
        self.dedupe_window = float(dedupe_window)
        self.dedupe_max_entries = dedupe_max_entries
        self._seen = (
            SeenPushes(round(dedupe_window * 1e9), dedupe_max_entries) if dedupe_window else None
        )
        self._in_flight: dict[bytes, asyncio.Event] = {}
        self._clock: Clock = clock if clock is not None else MonotonicClock()

    def __repr__(self) -> str:
        token = "'***'" if self._path_token is not None else "None"
        return (
            f"PushReceiver({self._handler!r}, max_body_size={self.max_body_size}, "
            f"path_token={token}, allowed_networks={self._sources.allowed!r}, "
            f"trusted_proxies={self._sources.trusted_proxies!r}, "
            f"dedupe_window={self.dedupe_window:g})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            answer = await self._answer(scope, receive)
            if answer is not None:
                await answer.send(send, head=scope.get("method") == "HEAD")
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    @staticmethod
    async def _lifespan(receive: _Receive, send: _Send) -> None:
        # Nothing to start or stop: acknowledge both, so it can be served alone.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _path_ok(self, scope: _Scope) -> bool:
        path = _route_path(scope).removeprefix("/").removesuffix("/")
        if self._path_token is None:
            return path == ""
        return hmac.compare_digest(path.encode("utf-8", "surrogatepass"), self._path_token)

    async def _answer(self, scope: _Scope, receive: _Receive) -> _Answer | None:
        """The answer to one HTTP request (``None`` when the client went away)."""
        if not self._sources.allows(scope):
            logger.debug("refused a request from %r: not an allowed source", scope.get("client"))
            return _FORBIDDEN
        if not self._path_ok(scope):
            return _NOT_FOUND
        if scope.get("method") != "POST":
            return _NOT_ALLOWED
        headers: dict[bytes, list[str]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), []).append(value.decode("latin-1"))
        content_type = headers.get(b"content-type", [None])[0]
        if not _is_json(content_type):
            return _refuse(
                415,
                "unsupported_media_type",
                f"the content type must be application/json, got {content_type!r}",
            )
        lengths = {value.strip() for value in headers.get(b"content-length", [])}
        if lengths:
            if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
                return _refuse(400, "bad_request", "the Content-Length header is invalid")
            if int(next(iter(lengths))) > self.max_body_size:
                return self._too_large()
        body = await self._read(receive)
        if body is None:
            return None
        if body is _TOO_LARGE:
            return self._too_large()
        assert isinstance(body, bytes)
        try:
            push = parse_push(body)
        except InvalidPushError as error:
            logger.debug("refused a push: %s", error.reason)
            return _refuse(400, "invalid_push", error.reason)
        return await self._deliver(push)

    def _too_large(self) -> _Answer:
        return _refuse(
            413,
            "body_too_large",
            f"the body is larger than {self.max_body_size} bytes",
            (b"connection", b"close"),
        )

    async def _read(self, receive: _Receive) -> bytes | object | None:
        """The body, ``_TOO_LARGE`` as soon as it passes the limit, ``None`` on disconnect."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                return _TOO_LARGE  # stop here: the rest is never read
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _deliver(self, push: PushResponse) -> _Answer:
        seen = self._seen
        if seen is None or push.message.message_id is None:
            # Without a message id (the documented body has none), two people answering
            # "STOP" in the same millisecond send the same bytes: handing both over is
            # safe for an idempotent handler, dropping one is not.
            return await self._handle(push)
        key = push_key(push)
        # The same push arriving while it is being handled waits for that outcome.
        while (pending := self._in_flight.get(key)) is not None:
            await pending.wait()
        if seen.seen(key, self._clock.now_ns()):
            logger.debug("acknowledged a duplicate push for message %r", push.message.message_id)
            return _DUPLICATE
        done = self._in_flight[key] = asyncio.Event()
        try:
            answer = await self._handle(push)
            if answer is _HANDLED:
                seen.add(key, self._clock.now_ns())
            return answer
        finally:
            del self._in_flight[key]
            done.set()

    async def _handle(self, push: PushResponse) -> _Answer:
        try:
            if self._async_handler:
                result: Any = self._handler(push)
            else:
                result = await asyncio.to_thread(self._handler, push)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "the PUSH handler failed for message %r answered at %s; answered 500 so "
                "the sender may retry",
                push.message.message_id,
                format_date(push.response.answered_at),
            )
            return _HANDLER_FAILED
        return _HANDLED
