"""The rate limiter every send goes through: tokens that come back W after settling.

The rule (see "Rate limits" in the documentation): each window of N sends per W seconds
has N tokens.  A send takes one token from every window just before its request
is handed to the transport, and each token comes back exactly W after the attempt
*settles* (its answer arrived, it failed, or it was cancelled).  The server counts
a request at some instant between its arrival and its answer, so no rolling window
of W ever holds more than N sends as the server may count them, whatever its
latency.  A send that certainly never reached the server gives its tokens back at
once (:meth:`Permit.refund`).

Waiters are served first come, first served.  One timer runs, for the head of the
queue; a waiter is woken once, when its tokens are already taken for it, so no
later arrival can overtake it even when the event loop lags.  Time is integer
nanoseconds from an injected :class:`~vortext_async._clock.Clock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

import attrs

from ._clock import Clock, MonotonicClock
from ._errors import ClientClosedError, ConfigurationError, WaitBudgetExceededError

__all__ = ["Limiter", "LimiterState", "Permit", "RateLimit", "RateLimiter", "WindowState"]

_NS = 1_000_000_000


def _check_count(field: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"RateLimit {field} must be a positive integer, got {value!r}")


def _check_windows(
    _instance: object, _attribute: object, windows: tuple[tuple[int, float], ...]
) -> None:
    for window in windows:
        if not isinstance(window, tuple) or len(window) != 2:
            raise ConfigurationError(
                f"RateLimit windows must hold (max_sends, seconds) pairs, got {window!r}"
            )
        max_sends, seconds = window
        _check_count("windows max_sends", max_sends)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or round(seconds * _NS) < 1
        ):
            raise ConfigurationError(
                f"RateLimit windows seconds must be a positive number, got {seconds!r}"
            )


def _to_windows(windows: Iterable[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    return tuple(windows)


@attrs.frozen
class RateLimit:
    """An account's caps: at most ``per_minute`` sends in any 60 s, ``per_hour`` in any hour.

    ``windows`` adds other ``(max_sends, seconds)`` caps.  ``RateLimit()`` sets no
    cap: sends never wait, but a ``429`` still pauses every sender.
    """

    per_minute: int | None = attrs.field(
        default=None, validator=lambda _i, _a, value: _check_count("per_minute", value)
    )
    per_hour: int | None = attrs.field(
        default=None, validator=lambda _i, _a, value: _check_count("per_hour", value)
    )
    windows: tuple[tuple[int, float], ...] = attrs.field(
        default=(), kw_only=True, converter=_to_windows, validator=_check_windows
    )

    def all_windows(self) -> tuple[tuple[int, float], ...]:
        """Every cap as ``(max_sends, seconds)``."""
        caps: list[tuple[int, float]] = []
        if self.per_minute is not None:
            caps.append((self.per_minute, 60.0))
        if self.per_hour is not None:
            caps.append((self.per_hour, 3600.0))
        return (*caps, *self.windows)


@attrs.frozen
class WindowState:
    """One window in a :class:`LimiterState`: its cap and the tokens free now."""

    max_sends: int
    seconds: float
    tokens_left: int


@attrs.frozen
class LimiterState:
    """A snapshot of a limiter, for monitoring.

    ``paused_until`` is how many seconds the 429 pause still lasts, or ``None``.
    """

    windows: tuple[WindowState, ...]
    queued: int
    in_flight: int
    paused_until: float | None


class Permit:
    """The tokens of one attempt, handed out by ``acquire()``.

    Leaving the ``async with`` block settles it; call :meth:`settle` earlier when the
    answer arrived before the block ends, or :meth:`refund` when the request
    certainly never reached the server.
    """

    __slots__ = ("_done", "_release")

    def __init__(self, release: _Release) -> None:
        self._release = release
        self._done = False

    @property
    def settled(self) -> bool:
        """True once settled or refunded."""
        return self._done

    def settle(self) -> None:
        """The attempt settled now: its tokens come back W from now.  Idempotent."""
        if not self._done:
            self._done = True
            self._release(False)

    def refund(self) -> None:
        """The request never reached the server: its tokens come back at once.  Idempotent."""
        if not self._done:
            self._done = True
            self._release(True)


class _Release(Protocol):
    def __call__(self, refund: bool, /) -> None: ...


class Limiter(Protocol):
    """What the client needs of a rate limiter (:class:`RateLimiter`, ``RedisRateLimiter``)."""

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        """Wait for one token of every window, FIFO; the block's end settles the permit.

        Raises :class:`WaitBudgetExceededError`, taking nothing, when the wait would
        be (or turns out) longer than ``max_wait`` seconds.  ``attempt_timeout`` is the
        longest the attempt can hold its tokens: the client cuts every attempt by then
        (its own ``attempt_timeout``), so a limiter that may not see the settle (Redis,
        when a process dies mid-send) can count the tokens back at acquire +
        ``attempt_timeout`` + W.  The in-memory limiter sees every settle and needs no bound.
        """
        ...

    async def pause(self, seconds: float) -> None:
        """Hold every sender sharing this limiter for ``seconds`` (after a 429)."""
        ...

    def state(self) -> LimiterState:
        """A snapshot for monitoring."""
        ...

    def estimated_wait(self) -> float:
        """Seconds a send arriving now would wait (0 when it can go)."""
        ...

    async def aclose(self) -> None:
        """Stop the limiter's timers; waiting sends fail with ClientClosedError."""
        ...


class _Window:
    __slots__ = ("free", "max_sends", "returning", "seconds", "width")

    def __init__(self, max_sends: int, seconds: float) -> None:
        self.max_sends = max_sends
        self.seconds = seconds
        self.width = round(seconds * _NS)
        self.free = max_sends
        self.returning: deque[int] = deque()  # instants settled tokens come back, ascending

    def refill(self, now: int) -> None:
        returning = self.returning
        while returning and returning[0] <= now:
            returning.popleft()
            self.free += 1

    def token_time(self, now: int, nth: int) -> int:
        """A lower bound of when the ``nth`` token from now is free (FIFO use)."""
        cycles, base = divmod(nth - 1, self.max_sends)
        if base < self.free:
            at = now
        elif base < self.free + len(self.returning):
            at = self.returning[base - self.free]
        else:  # in flight: back W after it settles, at the earliest now
            at = now + self.width
        return at + cycles * self.width


class _Acquire:
    __slots__ = ("_limiter", "_max_wait", "_permit")

    def __init__(self, limiter: RateLimiter, max_wait: float | None) -> None:
        self._limiter = limiter
        self._max_wait = max_wait
        self._permit: Permit | None = None

    async def __aenter__(self) -> Permit:
        limiter = self._limiter
        if not limiter._queued and not limiter._closed and limiter._can_grant(limiter._now()):
            self._permit = limiter._grant()  # the common case, without a coroutine more
        else:
            self._permit = await limiter._acquire(self._max_wait)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            self._permit.settle()


class RateLimiter:
    """The in-memory :class:`Limiter`, shared by every send of one process.

    ``clock`` is the time source and sleep (tests: a ``VirtualClock``)::

        limiter = RateLimiter(RateLimit(per_minute=600, per_hour=20_000))
        async with limiter.acquire() as permit:
            response = await http.post(...)
    """

    def __init__(self, rate_limit: RateLimit, *, clock: Clock | None = None) -> None:
        self.rate_limit = rate_limit
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._windows = [_Window(n, seconds) for n, seconds in rate_limit.all_windows()]
        self._queue: deque[asyncio.Future[Permit]] = deque()  # cancelled ones skipped lazily
        self._queued = 0
        self._deadlines: list[tuple[int, int, asyncio.Future[Permit], float]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._paused_until = 0
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0
        self._closed = False
        self._now = self._clock.now_ns
        self._release_tokens = self._release  # bound once: one object less per grant

    def __repr__(self) -> str:
        return f"RateLimiter({self.rate_limit!r})"

    # -- public ------------------------------------------------------------------

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        """Wait FIFO for one token of every window (see :class:`Limiter`)."""
        return _Acquire(self, max_wait)

    async def pause(self, seconds: float) -> None:
        """Hold every sender until ``seconds`` from now (or a later pause already set)."""
        until = self._clock.now_ns() + max(0, round(seconds * _NS))
        self._paused_until = max(self._paused_until, until)

    def state(self) -> LimiterState:
        """A snapshot: tokens left per window, queued, in flight, pause left."""
        now = self._clock.now_ns()
        for window in self._windows:
            window.refill(now)
        return LimiterState(
            windows=tuple(WindowState(w.max_sends, w.seconds, w.free) for w in self._windows),
            queued=self._queued,
            in_flight=self._in_flight,
            paused_until=(self._paused_until - now) / _NS if self._paused_until > now else None,
        )

    def estimated_wait(self) -> float:
        """Seconds a send arriving now would wait, at the least (0 when it can go)."""
        return self._wait_ns(self._clock.now_ns(), self._queued) / _NS

    async def aclose(self) -> None:
        """Stop the timer; sends still waiting fail with :class:`ClientClosedError`."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            future = self._queue.popleft()
            if not future.done():
                future.set_exception(ClientClosedError("the rate limiter is closed"))
        self._queued = 0
        self._deadlines.clear()

    # -- acquiring ---------------------------------------------------------------

    async def _acquire(self, max_wait: float | None) -> Permit:
        if self._closed:
            raise ClientClosedError("the rate limiter is closed")
        now = self._clock.now_ns()
        if not self._queued and self._can_grant(now):
            return self._grant()
        if max_wait is not None:
            expected = self._wait_ns(now, self._queued)
            if expected > max_wait * _NS:
                raise WaitBudgetExceededError(expected / _NS, max_wait)
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        self._queued += 1
        if max_wait is not None:
            deadline = now + round(max_wait * _NS)
            heapq.heappush(self._deadlines, (deadline, next(self._seq), future, max_wait))
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done() or future.cancelled():
                future.cancel()
                self._queued -= 1  # it takes nothing; the queue skips it
            elif future.exception() is None:
                future.result().refund()  # granted but never used: the next waiter gets it
            raise

    def _can_grant(self, now: int) -> bool:
        if self._paused_until > now:
            return False
        for window in self._windows:
            window.refill(now)
            if not window.free:
                return False
        return True

    def _grant(self) -> Permit:
        for window in self._windows:
            window.free -= 1
        self._in_flight += 1
        return Permit(self._release_tokens)

    def _release(self, refund: bool) -> None:
        self._in_flight -= 1
        if refund:
            for window in self._windows:
                window.free += 1
            if self._queued:
                self._dispatch()
            return
        now = self._clock.now_ns()
        for window in self._windows:
            window.returning.append(now + window.width)
        if self._queued:
            self._arm(now)

    def _dispatch(self) -> None:
        """Grant the head waiters that can go now, expire overdue ones, arm the timer."""
        if self._closed:
            return
        now = self._clock.now_ns()
        queue = self._queue
        while queue:
            head = queue[0]
            if head.done():
                queue.popleft()
            elif self._can_grant(now):
                queue.popleft()
                self._queued -= 1
                head.set_result(self._grant())
            else:
                break
        deadlines = self._deadlines
        while deadlines and (deadlines[0][2].done() or deadlines[0][0] <= now):
            _, _, future, max_wait = heapq.heappop(deadlines)
            if not future.done():
                self._queued -= 1
                expected = self._wait_ns(now, 0) / _NS
                future.set_exception(WaitBudgetExceededError(max(expected, max_wait), max_wait))
        if self._queued:
            self._arm(now)

    def _next_grant(self, now: int) -> int | None:
        """When the head can go, or None while it waits for an attempt to settle."""
        at = max(now, self._paused_until)
        for window in self._windows:
            window.refill(now)
            if not window.free:
                if not window.returning:
                    return None
                at = max(at, window.returning[0])
        return at

    def _wake_at(self, now: int) -> int | None:
        """When the timer must fire: the head's grant or the earliest budget's end."""
        at = self._next_grant(now)
        if self._deadlines:
            at = self._deadlines[0][0] if at is None else min(at, self._deadlines[0][0])
        return at

    def _arm(self, now: int) -> None:
        at = self._wake_at(now)
        if at is None or (self._timer is not None and self._timer_at <= at):
            return  # nothing to wait for, or the running timer fires first and re-arms
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        """The one timer: sleeps until the head can go, grants, and sleeps again."""
        at: int | None = self._timer_at
        while at is not None:
            while (now := self._clock.now_ns()) < at:
                await self._clock.sleep((at - now) / _NS)
            self._dispatch()  # its own _arm() sees this timer and leaves it be
            at = self._wake_at(now) if self._queued else None
            self._timer_at = at or 0
        self._timer = None

    def _wait_ns(self, now: int, ahead: int) -> int:
        """A lower bound of the wait of a send with ``ahead`` sends queued before it."""
        at = max(now, self._paused_until)
        for window in self._windows:
            window.refill(now)
            at = max(at, window.token_time(now, ahead + 1))
        return at - now
