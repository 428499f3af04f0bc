"""A clock for the client and the retry layer in tests: virtual time, recorded waits."""

from __future__ import annotations

import asyncio

NS = 1_000_000_000
START = 1000.0  #: the clock's first instant, in seconds


class RecordingClock:
    """Virtual time: ``sleep`` records its argument and jumps time forward."""

    def __init__(self, start: float = START) -> None:
        self.now = round(start * NS)
        self.waits: list[float] = []

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += round(seconds * NS)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * NS)
