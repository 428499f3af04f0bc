"""An emulator served on loopback from a background thread, for blocking (sync) code.

``served_emulator(emulator)`` is a plain context manager yielding the base URL: the
emulator runs on an event loop of its own thread, so the test's thread stays free to
make blocking calls (the sync client, the README's scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from vortext_async.emulator import Emulator, serve_emulator


@contextlib.contextmanager
def served_emulator(emulator: Emulator) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="emulator-loop", daemon=True)
    thread.start()
    serving = serve_emulator(emulator)
    try:
        url = asyncio.run_coroutine_threadsafe(serving.__aenter__(), loop).result()
        try:
            yield url
        finally:
            asyncio.run_coroutine_threadsafe(serving.__aexit__(None, None, None), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class ThreadGateClock:
    """An emulator clock whose sleeps (its latency) wait for :meth:`open`.

    ``entered`` is set (a ``threading.Event``) when a request starts waiting, so
    another thread knows the request reached the server.  Made for an emulator
    served by :func:`served_emulator`: ``open`` is safe from any thread.
    """

    def __init__(self) -> None:
        import time

        self._now = time.monotonic_ns
        self.entered = threading.Event()
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def now_ns(self) -> int:
        return self._now()

    async def sleep(self, seconds: float) -> None:
        if self._gate is None:
            self._gate = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        self.entered.set()
        await self._gate.wait()

    def open(self) -> None:
        if self._loop is not None and self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)
