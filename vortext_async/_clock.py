"""Time as the limiter and the retry policy see it: a clock and a sleep.

Both are injected so tests run hours of rate-limit windows in milliseconds of
virtual time (see :class:`vortext_async.testing.VirtualClock`).  Time is integer
nanoseconds, so long runs accumulate no floating-point drift.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "MonotonicClock"]


class Clock(Protocol):
    """What the limiter and the retry policy need of time."""

    def now_ns(self) -> int:
        """A monotonic instant in integer nanoseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (cancellable)."""
        ...


class MonotonicClock:
    """The production clock: ``time.monotonic_ns`` and ``asyncio.sleep``."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "MonotonicClock()"
