"""A loopback HTTP server that enforces rolling windows, as a strict Vortext might.

Each request is counted at a random instant up to ``max_count_delay`` after it
arrives (seeded, so runs repeat), then refused with ``429`` if counting it would
put more than N requests in the last W seconds of any window; otherwise ``200``.
It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from types import TracebackType


class WindowServer:
    """``async with WindowServer([(n, seconds), ...]) as server:`` then ``server.url``."""

    def __init__(
        self, windows: Sequence[tuple[int, float]], *, max_count_delay: float = 0.03, seed: int = 7
    ) -> None:
        self.windows = [(n, round(seconds * 1e9)) for n, seconds in windows]
        self.max_count_delay = max_count_delay
        self.counted: list[int] = []  # monotonic ns of each accepted request
        self.refused = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> WindowServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/sms"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _admit(self, now: int) -> bool:
        for n, width in self.windows:
            if sum(1 for t in self.counted if t > now - width) >= n:
                return False
        self.counted.append(now)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(self._random.uniform(0, self.max_count_delay))
                if self._admit(time.monotonic_ns()):
                    status, body = b"200 OK", b'{"ok": true}'
                else:
                    self.refused += 1
                    status, body = b"429 Too Many Requests", b'{"error": "rate limited"}'
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
