"""The fault server as a strict Vortext might be: it enforces rolling windows.

Each request is counted at a random instant up to ``max_count_delay`` after it
arrives (seeded, so runs repeat), then refused with ``429`` if counting it would
put more than N requests in the last W seconds of any window; otherwise ``200``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from tests.support.faults import Fault, FaultServer, Received

__all__ = ["WindowServer"]

ADMITTED = Fault.answer(200, b'{"ok": true}')
REFUSED = Fault.answer(429, b'{"error": "rate limited"}')


class WindowServer(FaultServer):
    """``async with WindowServer([(n, seconds), ...]) as server:`` then ``server.url``.

    Unlike the plain fault server's, ``url`` is the send endpoint (``.../sms``).

    Args:
        windows: the limits enforced, as (N requests, per W seconds).
        max_count_delay: the most seconds between a request's arrival and its counting.
        seed: of the random counting delays.
    """

    def __init__(
        self, windows: Sequence[tuple[int, float]], *, max_count_delay: float = 0.03, seed: int = 7
    ) -> None:
        super().__init__()
        self.windows = [(n, round(seconds * 1e9)) for n, seconds in windows]
        self.max_count_delay = max_count_delay
        self.counted: list[int] = []
        """Monotonic ns of each accepted request."""
        self.refused = 0
        self._random = random.Random(seed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    async def respond(self, received: Received) -> Fault:
        await asyncio.sleep(self._random.uniform(0, self.max_count_delay))
        if self._admit(time.monotonic_ns()):
            return ADMITTED
        self.refused += 1
        return REFUSED

    def _admit(self, now: int) -> bool:
        for n, width in self.windows:
            if sum(1 for t in self.counted if t > now - width) >= n:
                return False
        self.counted.append(now)
        return True
