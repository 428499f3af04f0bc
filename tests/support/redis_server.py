"""A real redis-server for the tests, on a free port in a temporary directory.

``with redis_server() as server: server.url`` starts one and stops it.  Run as a
script (``python tests/support/redis_server.py worker URL TARGET COUNT N:SECONDS...``) it is a
worker process that sends COUNT requests to TARGET through a RedisRateLimiter and
prints how many were answered 200 and 429.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    password: str | None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def redis_server(*, password: str | None = None) -> Iterator[RedisServer]:
    """Start redis-server, wait until it says it is ready, stop it afterwards."""
    directory = tempfile.mkdtemp(prefix="vortext-redis-")
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
    args += ["--save", "", "--appendonly", "no", "--loglevel", "notice"]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, password)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server exited before it was ready")
        process.stdout.close()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _worker(url: str, target: str, count: int, windows: list[tuple[int, float]]) -> None:
    import asyncio

    import httpx

    from vortext_async import RateLimit, RedisRateLimiter

    limiter = RedisRateLimiter(RateLimit(windows=tuple(windows)), url, account="shared")
    statuses: list[int] = []
    async with httpx.AsyncClient() as http:

        async def one() -> None:
            async with limiter.acquire(attempt_timeout=10.0):
                response = await http.post(target, content=b"{}")
            statuses.append(response.status_code)

        await asyncio.gather(*(one() for _ in range(count)))
    await limiter.aclose()
    print(statuses.count(200), statuses.count(429))


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        import asyncio

        url, target, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        windows = [(int(n), float(s)) for n, s in (w.split(":") for w in sys.argv[5:])]
        asyncio.run(_worker(url, target, count, windows))
