"""The benchmark server: a minimal aiohttp app in its own process.

    python benchmarks/_server.py [--port 0]

Answers ``POST /sms`` with ``{"messageId": "<n>"}`` and ``GET /status`` with
``{"status": "OK"}``, prints ``PORT <n>`` on stdout once it listens, and serves until
killed.  It does no work beyond reading the body, so the client is what is measured.
Use :func:`running_server` from a benchmark to start it and stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_COUNTER = itertools.count(1)


async def _serve(port: int) -> None:
    from aiohttp import web

    async def sms(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=b'{"messageId":"m%d"}' % next(_COUNTER), content_type="application/json"
        )

    async def status(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"OK"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/sms", sms)
    app.router.add_get("/status", status)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start the server in a child process; yields its base URL; kills it on exit."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    _pin_apart(process.pid)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pin_apart(server_pid: int) -> None:
    """Server on the last CPU, this process on the others: less scheduler noise.

    Both still share the machine with whatever else runs; on one CPU, nothing is done.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return
    os.sched_setaffinity(server_pid, {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
