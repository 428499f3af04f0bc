"""The limiter of a client given no caps: it learns a pace from the refusals.

Until the first refusal it lets every send go at once (as ``RateLimit()`` does).  A
refusal reaches it the way it reaches every limiter: :meth:`pause` with the seconds
the server asked for (its ``Retry-After``, or the client's default).  It knows no
HTTP: a pause is "refused, try again in that many seconds".

The first refusals teach it the account's cap: the sends accepted over the span
that the pause shows (at least the pause itself, at least the spread of the sends
counted) give a rate, and from then on the sends are paced, evenly spaced, at 90%
of it.  After that it is AIMD, as TCP's congestion control: each quiet span (no
refusal) adds a small step to the rate; a refusal multiplies it by 0.8, at most
once per span.  What it learned is logged once, with the ``RateLimit`` to configure.

Waiters are served first come, first served, by one timer, like
:class:`~vortext_async.RateLimiter`; time is the injected clock's.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Final

from ._clock import Clock, MonotonicClock
from ._errors import ClientClosedError, ConfigurationError, WaitBudgetExceededError
from ._limiter import LimiterState, Permit, RateLimit, WindowState

__all__ = ["LearnedRateLimiter"]

logger = logging.getLogger("vortext_async.limiter")

_NS: Final = 1_000_000_000
_HISTORY: Final = 65_536
"""Grants remembered to learn from (their instants); more only sharpen a high rate."""
MARGIN: Final = 0.9
"""The learned rate is used at this share: a margin for the server's counting jitter."""
DECREASE: Final = 0.8
"""Multiplicative decrease of the rate on a refusal once paced."""
INCREASE: Final = 0.02
"""Additive increase per quiet span, as a share of the first learned rate."""


class _Acquire:
    __slots__ = ("_limiter", "_max_wait", "_permit")

    def __init__(self, limiter: LearnedRateLimiter, max_wait: float | None) -> None:
        self._limiter = limiter
        self._max_wait = max_wait
        self._permit: Permit | None = None

    async def __aenter__(self) -> Permit:
        limiter = self._limiter
        if limiter._unpaced and not limiter._queue and not limiter._closed:  # no pace
            now = limiter._now()
            if limiter._paused_until <= now:
                self._permit = limiter._grant(now)
                return self._permit
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


class LearnedRateLimiter:
    """A :class:`~vortext_async.Limiter` that learns its pace from refusals (AIMD).

    The client uses it when given no ``rate_limit``.  Configure the account's caps
    (:class:`~vortext_async.RateLimit`) when you know them: learning costs the
    refusals of the first burst.

    Args:
        clock: the time source and sleep (tests: a ``VirtualClock``).
        margin: the share of the learned rate it paces at (below 1: room for the
            server's counting jitter).
    """

    def __init__(self, *, clock: Clock | None = None, margin: float = MARGIN) -> None:
        if not 0 < margin <= 1:
            raise ConfigurationError(f"margin must be in (0, 1], not {margin!r}")
        self.margin = margin
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._now = self._clock.now_ns
        self._grants: deque[int] = deque(maxlen=_HISTORY)  # instants of recent grants
        self._refusals: deque[int] = deque(maxlen=_HISTORY)
        self._unpaced = True  # no pace and no lesson pending: sends go at once
        self._lesson_pending = False  # refusals seen; their pause not over yet
        self._interval = 0  # ns between two grants; 0: unpaced
        self._step = 0.0  # additive increase, sends per second
        self._rate = 0.0  # sends per second when paced
        self._span = 0  # ns: the learning span, and the AIMD period
        self._learning_until = 0  # refusals until then teach the first rate
        self._first_refusal = 0
        self._last_change = 0  # the last change of the rate, either way
        self._last_decrease = 0  # the last decrease (or the first lesson)
        self._suggested: RateLimit | None = None
        self._next_at = 0  # the earliest instant of the next grant
        self._paused_until = 0
        self._in_flight = 0
        self._queue: deque[asyncio.Future[Permit]] = deque()
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self._release_tokens = self._release

    def __repr__(self) -> str:
        pace = f"{self._rate:.3g}/s" if self._interval else "unpaced"
        return f"LearnedRateLimiter({pace})"

    # -- what it learned -----------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Sends per second it paces at, or None before the first refusal."""
        return self._rate if self._interval else None

    @property
    def suggested_rate_limit(self) -> RateLimit | None:
        """The caps the first refusals showed, to configure instead (None: none yet)."""
        return self._suggested

    # -- the Limiter protocol --------------------------------------------------------

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        """Wait for this send's turn at the learned pace, FIFO (see ``Limiter``)."""
        return _Acquire(self, max_wait)

    async def pause(self, seconds: float) -> None:
        """A send was refused: hold every sender ``seconds``, and learn from it."""
        now = self._now()
        seconds = max(0.0, seconds)
        self._paused_until = max(self._paused_until, now + round(seconds * _NS))
        self._refusals.append(now)
        span = max(_NS, round(seconds * _NS))
        if self._unpaced:
            self._unpaced = False
            self._lesson_pending = True
            self._first_refusal = now
            self._span = span
            self._learning_until = self._paused_until
        elif self._lesson_pending and now <= self._learning_until:  # one burst, one lesson
            self._span = max(self._span, span)
            self._learning_until = self._paused_until
        elif self._interval and now - self._last_decrease >= self._span:
            # Once per span: one burst of refusals is one decrease.  An increase just
            # before does not defer it (the increase is what overshot).
            self._set_rate(self._rate * DECREASE, now)
            self._last_decrease = now
        if self._queue:
            self._arm()

    def state(self) -> LimiterState:
        """A snapshot: the learned pace as one window, queued, in flight, pause left."""
        now = self._now()
        windows: tuple[WindowState, ...] = ()
        if self._interval:
            seconds = self._span / _NS
            per_span = max(1, math.floor(self._rate * seconds))
            free = 1 if self._next_at <= now and self._paused_until <= now else 0
            windows = (WindowState(per_span, seconds, free),)
        return LimiterState(
            windows=windows,
            queued=self._waiting(),
            in_flight=self._in_flight,
            paused_until=(self._paused_until - now) / _NS if self._paused_until > now else None,
        )

    def estimated_wait(self) -> float:
        """Seconds a send arriving now would wait, at the least (0 when it can go)."""
        now = self._now()
        self._learn(now)
        at = max(now, self._paused_until, self._next_at) + self._waiting() * self._interval
        return (at - now) / _NS

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

    # -- granting ----------------------------------------------------------------------

    def _waiting(self) -> int:
        return sum(1 for future in self._queue if not future.done())

    def _grant(self, now: int) -> Permit:
        self._grants.append(now)
        if self._interval:
            self._next_at = max(now, self._next_at) + self._interval
        self._in_flight += 1
        return Permit(self._release_tokens)

    def _release(self, refund: bool) -> None:
        self._in_flight -= 1
        if refund and self._interval:
            self._next_at -= self._interval  # it never reached the server

    def _can_go(self, now: int) -> bool:
        return self._paused_until <= now and self._next_at <= now

    async def _acquire(self, max_wait: float | None) -> Permit:
        if self._closed:
            raise ClientClosedError("the rate limiter is closed")
        now = self._now()
        self._learn(now)
        if not self._queue and self._can_go(now):
            return self._grant(now)
        if max_wait is not None:
            expected = self.estimated_wait()
            if expected > max_wait:
                raise WaitBudgetExceededError(expected, max_wait)
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        self._arm()
        try:
            if max_wait is None:
                return await future
            return await self._wait_within(future, max_wait)
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()
            elif not future.cancelled() and future.exception() is None:
                future.result().refund()  # granted but never used
            raise

    async def _wait_within(self, future: asyncio.Future[Permit], max_wait: float) -> Permit:
        """Await ``future``, giving up (taking nothing) after ``max_wait`` of the clock."""
        timeout: asyncio.Future[None] = asyncio.ensure_future(self._clock.sleep(max_wait))
        waited: list[asyncio.Future[object]] = [future, timeout]  # type: ignore[list-item]
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timeout.cancel()
        if future.done():
            return future.result()
        future.cancel()
        raise WaitBudgetExceededError(max(max_wait, self.estimated_wait()), max_wait)

    def _arm(self) -> None:
        if self._timer is None and not self._closed:
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        """The one timer: grants the head when its turn comes, then sleeps again."""
        try:
            while self._queue:
                head = self._queue[0]
                if head.done():
                    self._queue.popleft()
                    continue
                now = self._now()
                self._learn(now)
                at = max(self._paused_until, self._next_at)
                if at > now:
                    await self._clock.sleep((at - now) / _NS)
                    continue
                self._queue.popleft()
                head.set_result(self._grant(now))
                await asyncio.sleep(0)  # let it run before the next grant
        finally:
            self._timer = None

    # -- learning ----------------------------------------------------------------------

    def _learn(self, now: int) -> None:
        """Settle the first lesson once its pause is over; add a step per quiet span."""
        if self._unpaced or now < self._learning_until:
            return
        if self._lesson_pending:
            self._first_lesson(now)
        elif now - self._last_change >= self._span and (
            not self._refusals or now - self._refusals[-1] >= self._span
        ):
            self._set_rate(self._rate + self._step, now)

    def _first_lesson(self, now: int) -> None:
        start = self._first_refusal - self._span
        grants = [t for t in self._grants if start <= t <= self._learning_until]
        refused = sum(1 for t in self._refusals if start <= t)
        accepted = len(grants) - refused
        self._lesson_pending = False
        if accepted < 1:  # nothing went through: no rate to learn, only the pause
            self._unpaced = True
            return
        spread = (grants[-1] - grants[0]) if grants else 0
        span = max(self._span, spread)
        seconds = span / _NS
        self._suggested = RateLimit(windows=[(accepted, round(seconds, 3))])
        if round(seconds) == 60:
            self._suggested = RateLimit(per_minute=accepted)
        elif round(seconds) == 3600:
            self._suggested = RateLimit(per_hour=accepted)
        learned = accepted / seconds
        self._step = INCREASE * learned
        self._set_rate(learned * self.margin, now)
        self._last_decrease = now
        logger.warning(
            "no rate_limit configured: the server refused %d of %d sends; pacing at "
            "%.3g sends per second from now on. Configure the account's caps, e.g. "
            "rate_limit=%s, to avoid these refusals",
            refused,
            len(grants),
            self._rate,
            describe(self._suggested),
            extra={
                "vortext_learned_rate": self._rate,
                "vortext_suggested_rate_limit": describe(self._suggested),
            },
        )

    def _set_rate(self, rate: float, now: int) -> None:
        self._rate = max(rate, 1e-6)
        self._interval = max(1, round(_NS / self._rate))
        self._last_change = now


def describe(rate_limit: RateLimit) -> str:
    """``RateLimit(per_minute=600)``: the call that builds ``rate_limit``, for messages."""
    parts = [f"per_minute={rate_limit.per_minute}"] if rate_limit.per_minute else []
    if rate_limit.per_hour:
        parts.append(f"per_hour={rate_limit.per_hour}")
    if rate_limit.windows:
        parts.append(f"windows={list(rate_limit.windows)!r}")
    return f"RateLimit({', '.join(parts)})"
