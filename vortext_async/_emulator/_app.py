"""The emulator itself: an ASGI application speaking the Vortext API.

Independent of the client package (it checks the client from the outside).  Each
request is handled in this order:

1. Basic auth against the configured users (``401`` with ``WWW-Authenticate``);
2. routing (``404`` unknown path, ``405`` wrong method) and the body checks
   (``413``, ``415``, ``400`` with a JSON reason);
3. a fault is drawn: a 5xx answer or, when served by the built-in server, a dropped
   connection.  A ``503`` is answered before processing (the request is not
   counted or stored: "not processed"); the other 5xx and drops strike after it
   (the SMS was taken but the sender cannot know);
4. a send is counted against the account's rolling windows at a random instant up
   to ``count_delay`` after it arrived; one that does not fit is refused ``429``
   with ``Retry-After`` (or, with ``enforce=False``, accepted and only counted as a
   violation);
5. the added latency, then the answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from . import _wire
from ._caps import RollingWindows, check_windows
from ._push import PushSender, push_body
from ._store import MessageStore, ReceivedSms, send_key

__all__ = ["DROP_CONNECTION_EXTENSION", "Emulator", "EmulatorClock", "EmulatorStats"]

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

DROP_CONNECTION_EXTENSION = "vortext.drop_connection"
"""The ASGI extension (in ``scope["extensions"]``) of a server that can drop the connection:
the app then sends ``{"type": DROP_CONNECTION_EXTENSION}`` instead of an answer.  The built-
in server offers it; uvicorn and ``httpx.ASGITransport`` do not, and the emulator then draws
no drops.
"""

DEFAULT_USERS: Mapping[str, str] = MappingProxyType({"demo": "demo"})
_NS = 1_000_000_000
_JSON = b"application/json"


class EmulatorClock(Protocol):
    """The time the emulator counts windows and sleeps with (integer nanoseconds)."""

    def now_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class _MonotonicClock:
    __slots__ = ()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """What the emulator saw, for tests to check a client from the outside.

    ``violations`` counts sends that would have exceeded at least one window (refused
    or, with ``enforce=False``, accepted anyway); ``window_violations`` counts them
    per configured window, in order; ``refused`` counts the ``429`` answers.
    """

    requests: int
    accepted: int
    refused: int
    violations: int
    window_violations: tuple[int, ...]
    bad_requests: int
    unauthorized: int
    not_found: int
    errors: int
    drops: int
    pushes_sent: int
    pushes_failed: int
    stored: int
    evicted: int


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


_DROP = object()
_TOO_LARGE = object()
_COUNTERS = (
    "requests",
    "accepted",
    "refused",
    "violations",
    "bad_requests",
    "unauthorized",
    "not_found",
    "errors",
    "drops",
    "pushes_sent",
    "pushes_failed",
)


class Emulator:
    """An ASGI app that emulates the Vortext SMS API for tests, demos and benchmarks.

    Args:
        users: username to password for Basic auth; each user is one account.
        windows: the account caps, ``(max_sends, seconds)`` pairs, enforced as rolling
            windows.
        count_delay: each send is counted at a random instant up to that many seconds
            after it arrived (a server that counts late).
        enforce: False accepts every send and only counts violations.
        latency: seconds, or a ``(low, high)`` range, waited before each answer.
        error_rate: the share of requests answered with one of ``error_statuses``.
        error_statuses: the 5xx codes ``error_rate`` picks from.
        drop_rate: the share of requests whose connection is dropped after the request
            was read and processed (only when served by :func:`serve_emulator`'s
            built-in server).
        push_url: receives PUSH bodies from :meth:`reply`, and automatically for a
            ``reply_rate`` share of accepted sends.
        reply_rate: the share of accepted sends answered automatically.
        reply_content: the text of those automatic replies.
        reply_delay: seconds after the send was accepted before its automatic reply.
        max_stored: the store keeps the latest sends only (bounded memory).
        max_body: the largest request body read, in bytes; a larger one is answered 413.
        seed: makes message ids, faults and counting delays reproducible.
        clock: an object with ``now_ns()`` and ``async sleep(seconds)`` (virtual time in
            tests).

    The fault and reply settings are plain attributes a test may change between
    requests.  The emulator is safe to share between concurrent requests and to
    read from another thread.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] = DEFAULT_USERS,
        windows: Iterable[tuple[int, float]] = (),
        count_delay: float = 0.0,
        enforce: bool = True,
        latency: float | tuple[float, float] = 0.0,
        error_rate: float = 0.0,
        error_statuses: Iterable[int] = (500, 502, 503, 504),
        drop_rate: float = 0.0,
        push_url: str | None = None,
        reply_rate: float = 0.0,
        reply_content: str = "OK",
        reply_delay: float = 0.0,
        max_stored: int = 100_000,
        max_body: int = 1 << 20,
        seed: int | None = None,
        clock: EmulatorClock | None = None,
    ) -> None:
        if not users:
            raise ValueError("users: at least one (username, password) is needed")
        for name, password in users.items():
            if not isinstance(name, str) or not isinstance(password, str) or ":" in name:
                raise ValueError(f"users: bad entry for username {name!r}")
        self._users = dict(users)
        self.windows = check_windows(windows)
        self.count_delay = _non_negative("count_delay", count_delay)
        self.enforce = enforce
        self.latency = _latency(latency)
        self.error_rate = _share("error_rate", error_rate)
        self.error_statuses = tuple(error_statuses)
        if not self.error_statuses or any(not 500 <= s <= 599 for s in self.error_statuses):
            raise ValueError(f"error_statuses must be 5xx codes, got {self.error_statuses!r}")
        self.drop_rate = _share("drop_rate", drop_rate)
        self.push_url = push_url
        self.reply_rate = _share("reply_rate", reply_rate)
        self.reply_content = reply_content
        self.reply_delay = _non_negative("reply_delay", reply_delay)
        self.max_body = max_body
        self.clock: EmulatorClock = clock if clock is not None else _MonotonicClock()
        self._max_stored = max_stored
        self._seed = seed
        self._lock = threading.Lock()
        self._push = PushSender()
        self._replies: set[asyncio.Task[None]] = set()
        self._reset_state()

    # -- reading what happened ---------------------------------------------------

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters."""
        with self._lock:
            c = self._counters
            return EmulatorStats(
                window_violations=tuple(self._window_violations),
                stored=len(self._store),
                evicted=self._store.evicted,
                **{name: c[name] for name in _COUNTERS},
            )

    def messages(self) -> list[ReceivedSms]:
        """The accepted SMS still in the store, oldest first (do not mutate them)."""
        with self._lock:
            return self._store.messages()

    def message(self, message_id: str) -> ReceivedSms | None:
        """One stored SMS by id, or ``None`` (unknown or evicted)."""
        with self._lock:
            return self._store.get(message_id)

    def received_count(
        self, phone_number: str, message: str, metadata: Mapping[str, _wire.JSON] | None = None
    ) -> int:
        """How many times this exact SMS (phone, message, metadata) was accepted."""
        key = send_key(phone_number, message, None if metadata is None else dict(metadata))
        with self._lock:
            return self._store.count(key)

    def duplicates(self) -> dict[tuple[str, str, str], int]:
        """Every (phone, message, metadata-as-JSON) accepted more than once, with its count."""
        with self._lock:
            return self._store.duplicates()

    def reset(self) -> None:
        """Forget every message, counter and window (settings are kept)."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._rng = random.Random(self._seed)
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._window_violations = [0] * len(self.windows)
        self._caps = RollingWindows(self.windows)
        self._store = MessageStore(self._max_stored)

    # -- replies -----------------------------------------------------------------

    async def reply(
        self, message_id: str, content: str, *, answered_at: datetime | None = None
    ) -> int:
        """POST a PUSH reply to ``message_id`` to ``push_url``; the receiver's status.

        Raises ``LookupError`` for an unknown id, ``RuntimeError`` without a
        ``push_url``, and the HTTP error when the receiver cannot be reached.
        """
        sms = self.message(message_id)
        if sms is None:
            raise LookupError(f"no stored SMS with messageId {message_id!r}")
        return await self._send_push(sms, content, answered_at)

    async def drain(self) -> None:
        """Wait until every automatic reply scheduled so far has been posted."""
        while self._replies:
            await asyncio.gather(*list(self._replies), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending automatic replies and close the push client (reusable after)."""
        replies = list(self._replies)
        for task in replies:
            task.cancel()
        await asyncio.gather(*replies, return_exceptions=True)
        await self._push.aclose()

    async def _send_push(self, sms: ReceivedSms, content: str, answered_at: datetime | None) -> int:
        if self.push_url is None:
            raise RuntimeError("the emulator has no push_url to post replies to")
        body = push_body(sms, content, answered_at or _wire.utc_now())
        try:
            status = await self._push.post(self.push_url, body)
        except Exception:
            self._bump("pushes_failed")
            raise
        self._bump("pushes_sent" if 200 <= status < 300 else "pushes_failed")
        return status

    async def _auto_reply(self, sms: ReceivedSms) -> None:
        if self.reply_delay:
            await self.clock.sleep(self.reply_delay)
        try:
            await self._send_push(sms, self.reply_content, None)
        except Exception:  # counted in pushes_failed; nobody awaits this task
            return

    # -- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await self._read_body(receive)
        if body is None:  # the client went away
            return
        extensions = scope.get("extensions")
        can_drop = isinstance(extensions, Mapping) and DROP_CONNECTION_EXTENSION in extensions
        answer = await self._handle(scope, body, can_drop=can_drop)
        if answer is _DROP:
            await send({"type": DROP_CONNECTION_EXTENSION})
            return
        assert isinstance(answer, _Answer)
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(answer.body)).encode()),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: _Receive, send: _Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: _Receive) -> bytes | object | None:
        """The whole body; ``None`` if the client left; ``_TOO_LARGE`` (rest unread)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return _TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle(
        self, scope: _Scope, body: bytes | object, *, can_drop: bool
    ) -> _Answer | object:
        self._bump("requests")
        headers = _headers(scope)
        account = self._authenticate(headers.get(b"authorization"))
        if account is None:
            self._bump("unauthorized")
            return _error(
                401,
                "missing or wrong credentials (HTTP Basic)",
                (b"www-authenticate", f'Basic realm="{_wire.AUTH_REALM}"'.encode()),
            )
        method, path = scope["method"], scope["path"]
        if path == _wire.STATUS_PATH:
            allowed, route = "GET", "status"
        elif path == _wire.SMS_PATH:
            allowed, route = "POST", "send"
        elif path.startswith(_wire.SMS_DETAIL_PREFIX) and _is_id(
            path[len(_wire.SMS_DETAIL_PREFIX) :]
        ):
            allowed, route = "GET", "detail"
        else:
            self._bump("not_found")
            return _error(404, f"no such path: {path}")
        if method != allowed:
            return _error(405, f"{method} is not allowed on {path}", (b"allow", allowed.encode()))
        if route == "send":
            if body is _TOO_LARGE:
                return _error(413, f"body larger than {self.max_body} bytes")
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media != _JSON:
                return _error(415, "Content-Type must be application/json")

        fault = self._draw_fault(can_drop)
        if isinstance(fault, int) and fault in _wire.NOT_PROCESSED_STATUSES:
            await self._sleep_latency()
            self._bump("errors")
            return _error(fault, "injected fault: not processed")
        if route == "status":
            now = _wire.format_date(_wire.utc_now())
            answer = _ok(200, {**_wire.SERVICE_UP, _wire.SERVICE_TIME: now})
        elif route == "send":
            assert isinstance(body, bytes)
            answer = await self._send(account, body)
        else:
            answer = self._detail(path[len(_wire.SMS_DETAIL_PREFIX) :])
        await self._sleep_latency()
        if fault is _DROP:
            self._bump("drops")
            return _DROP
        if isinstance(fault, int):
            self._bump("errors")
            return _error(fault, "injected fault: processed, answer lost")
        return answer

    async def _send(self, account: str, body: bytes) -> _Answer:
        try:
            phone, text, metadata = _wire.parse_send(body)
        except _wire.InvalidSend as exc:
            self._bump("bad_requests")
            return _error(400, str(exc))
        if self.count_delay:
            with self._lock:
                delay = self._rng.uniform(0.0, self.count_delay)
            await self.clock.sleep(delay)
        with self._lock:
            now = self.clock.now_ns()
            verdict = self._caps.check(account, now)
            if not verdict.fits:
                self._counters["violations"] += 1
                for index in verdict.exceeded:
                    self._window_violations[index] += 1
                if self.enforce:
                    self._counters["refused"] += 1
                    retry_after = max(1, math.ceil(verdict.wait_ns / _NS))
                    return _error(
                        429,
                        f"account {account!r} over its cap; retry in {retry_after} s",
                        (b"retry-after", str(retry_after).encode()),
                    )
            self._caps.record(account, now)
            sms = ReceivedSms(
                message_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                account=account,
                phone_number=phone,
                message=text,
                metadata=metadata,
                created_at=_wire.utc_now(),
                counted_ns=now,
            )
            self._store.add(sms)
            self._counters["accepted"] += 1
            auto_reply = (
                self.push_url is not None
                and self.reply_rate > 0
                and self._rng.random() < self.reply_rate
            )
        if auto_reply:
            task = asyncio.get_running_loop().create_task(self._auto_reply(sms))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        return _ok(_wire.SEND_STATUS, {_wire.MESSAGE_ID: sms.message_id})

    def _detail(self, message_id: str) -> _Answer:
        sms = self.message(message_id)
        if sms is None:
            self._bump("not_found")
            return _error(404, f"no SMS with messageId {message_id!r}")
        return _ok(200, sms.to_wire())

    def _authenticate(self, header: bytes | None) -> str | None:
        if header is None or header[:6].lower() != b"basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, colon, password = decoded.partition(":")
        expected = self._users.get(username)
        if not colon or expected is None:
            return None
        if not hmac.compare_digest(password.encode(), expected.encode()):
            return None
        return username

    def _draw_fault(self, can_drop: bool) -> object | int | None:
        if not self.error_rate and not (can_drop and self.drop_rate):
            return None
        with self._lock:
            if can_drop and self.drop_rate and self._rng.random() < self.drop_rate:
                return _DROP
            if self.error_rate and self._rng.random() < self.error_rate:
                return self._rng.choice(self.error_statuses)
        return None

    async def _sleep_latency(self) -> None:
        low, high = self.latency
        if high <= 0:
            return
        if low == high:
            delay = low
        else:
            with self._lock:
                delay = self._rng.uniform(low, high)
        await self.clock.sleep(delay)

    def _bump(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def __repr__(self) -> str:
        return (
            f"Emulator(users={sorted(self._users)!r}, windows={self.windows!r}, "
            f"enforce={self.enforce!r})"
        )


def _headers(scope: _Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", ())}


def _is_id(text: str) -> bool:
    return bool(text) and "/" not in text


def _ok(status: int, body: Any) -> _Answer:
    return _Answer(status, _wire.dump(body))


def _error(status: int, reason: str, *headers: tuple[bytes, bytes]) -> _Answer:
    return _Answer(status, _wire.dump(_wire.error_body(status, reason)), headers)


def _share(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def _non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return float(value)


def _latency(value: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, tuple):
        low, high = value
    else:
        low = high = value
    if not 0 <= low <= high:
        raise ValueError(f"latency must be seconds >= 0 or a (low, high) range, got {value!r}")
    return float(low), float(high)
