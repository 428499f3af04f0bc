"""Virtual time for tests: hours of rate-limit windows in milliseconds.

:class:`VirtualClock` implements :class:`~vortext_async._clock.Clock`.  Its time
only moves when every task is idle (nothing ready to run on the event loop): it
then jumps straight to the earliest sleeper's deadline and wakes it, like trio's
``MockClock(autojump_threshold=0)``.  ``advance()`` moves it by hand.

It needs asyncio's own event loop (it looks at the loop's ready queue to know
when every task is idle); real I/O in flight does not count as activity, so use
it for code whose waiting all goes through the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["VirtualClock"]

_NS = 1_000_000_000


class VirtualClock:
    """A :class:`~vortext_async._clock.Clock` whose time jumps when all tasks wait.

    ``start`` is the initial time in seconds.  With ``autojump=False`` time moves
    only through :meth:`advance`.
    """

    __slots__ = ("_armed", "_autojump", "_loop", "_now", "_seq", "_sleepers")

    def __init__(self, *, start: float = 0.0, autojump: bool = True) -> None:
        self._now = round(start * _NS)
        self._autojump = autojump
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._armed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def now_ns(self) -> int:
        """The virtual instant in integer nanoseconds."""
        return self._now

    def time(self) -> float:
        """The virtual instant in seconds."""
        return self._now / _NS

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending now (a quiet limiter keeps this at one)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time (at least one nanosecond when positive)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        if getattr(loop, "_ready", None) is None:
            raise RuntimeError("VirtualClock needs asyncio's own event loop")
        self._loop = loop
        future: asyncio.Future[None] = loop.create_future()
        deadline = self._now + max(1, round(seconds * _NS))
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        self._arm()
        try:
            await future
        finally:
            future.cancel()  # no-op when it fired; drops it from the heap lazily

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers now due."""
        if seconds < 0:
            raise ValueError(f"advance: seconds must not be negative, got {seconds!r}")
        self._now += round(seconds * _NS)
        self._wake_due()

    def _arm(self) -> None:
        if self._autojump and not self._armed and self._loop is not None:
            self._armed = True
            self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._armed = False
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].done():
            heapq.heappop(sleepers)
        if not sleepers:
            return
        if self._loop is not None and self._loop._ready:  # type: ignore[attr-defined]
            self._arm()  # some task can still run: let it, check again after
            return
        self._now = max(self._now, sleepers[0][0])
        self._wake_due()

    def _wake_due(self) -> None:
        sleepers = self._sleepers
        while sleepers and (sleepers[0][2].done() or sleepers[0][0] <= self._now):
            _, _, future = heapq.heappop(sleepers)
            if not future.done():
                future.set_result(None)
        if sleepers:
            self._arm()

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.time():.9f})"
