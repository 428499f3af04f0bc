"""A real redis-server for the tests, on a free port in a temporary directory.

``with redis_server() as server: server.url`` starts one and stops it;
``redis_server(args=["--replicaof", "127.0.0.1", str(port)])`` passes more
options; ``server.frozen()`` holds it stopped (SIGSTOP) for a ``with`` block.
``MovedServer`` answers every script call with ``MOVED``, as a Redis Cluster node
does for a key of another node (a real cluster needs 3 masters: too heavy here).
Run as a script (``python tests/support/redis_server.py worker URL TARGET COUNT
N:SECONDS...``) it is a
worker process that sends COUNT requests to TARGET through a RedisRateLimiter and
prints how many were answered 200 and 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
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

    def url_for(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stopped (SIGSTOP) for the block: it accepts, reads nothing."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def redis_server(
    *, password: str | None = None, args: list[str] | None = None
) -> Iterator[RedisServer]:
    """Start redis-server, wait until it says it is ready, stop it afterwards."""
    directory = tempfile.mkdtemp(prefix="vortext-redis-")
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
    argv += ["--save", "", "--appendonly", "no", "--loglevel", "notice"]
    if password:
        argv += ["--requirepass", password]
    argv += args or []
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


class MovedServer:
    """A fake Redis Cluster node: answers MOVED to every script call, OK to the rest."""

    def __init__(self) -> None:
        self.commands: list[list[bytes]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> MovedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readline()
                if not header.startswith(b"*"):
                    break
                command = []
                for _ in range(int(header[1:])):
                    size = int((await reader.readline())[1:])
                    command.append((await reader.readexactly(size + 2))[:-2])
                self.commands.append(command)
                if command[0].upper() in (b"EVAL", b"EVALSHA"):  # a command with keys
                    writer.write(b"-MOVED 12539 127.0.0.1:7002\r\n")
                else:  # CLIENT SETINFO on connect
                    writer.write(b"+OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


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
