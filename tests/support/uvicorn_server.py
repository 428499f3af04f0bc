"""Serving ASGI apps with uvicorn for the tests: in-process, or as a real subprocess.

- :func:`serve_app`: an app on a free loopback port in this event loop (yields the
  base URL and the ``uvicorn.Server``, whose ``server_state`` tells which requests
  are still being handled).
- :class:`GateClock`: an emulator clock whose sleeps (the emulator's latency) wait
  for :meth:`GateClock.open`: a slow answer without sleeping in real time.
- :func:`spawn_uvicorn`: ``uvicorn`` as a subprocess running the example app (the
  ``example_app`` factory below), ready once it answers ``GET /health``;
  :func:`spawn_gunicorn`: the same under gunicorn with uvicorn workers.
- :func:`load_example`: the example module ``examples/fastapi_app/app.py``;
  :func:`notify` calls its ``POST /notify``, :func:`outcomes` reads the outcome
  lines it logs, :func:`stored_refs` what the emulator received for each ``ref``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi_app" / "app.py"
LEFTOVER_MARK = "LEFTOVER-TASKS"


def load_example() -> ModuleType:
    """``examples/fastapi_app/app.py`` as the module ``fastapi_example_app``."""
    name = "fastapi_example_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_app(app: Any, **config: Any) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """Serve ``app`` (lifespan on) on a free loopback port of this event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,  # a failing test must not hang on a held request
    }
    server = uvicorn.Server(uvicorn.Config(app, **{**options, **config}))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)  # readiness polling
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task
        sock.close()


async def wait_until(predicate: Any, *, what: str, guard: float = 20.0) -> None:
    """Poll ``predicate()`` until true (a hang guard, not a timing assumption)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + guard
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


class GateClock:
    """An emulator clock: real ``now_ns``; ``sleep`` waits until the gate opens."""

    def __init__(self) -> None:
        self._gate = asyncio.Event()
        self.sleeping = 0

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await self._gate.wait()
        finally:
            self.sleeping -= 1

    def open(self) -> None:
        self._gate.set()

    def close(self) -> None:
        self._gate.clear()

    @contextlib.asynccontextmanager
    async def opened_at_exit(self) -> AsyncIterator[None]:
        """Open the gate when the block ends, even on failure, so servers can stop."""
        try:
            yield
        finally:
            self.open()


# -- talking to the example app -------------------------------------------------

PHONE = "+33611272727"
CREDENTIALS = {"VORTEXT_USERNAME": "demo", "VORTEXT_PASSWORD": "demo"}
OUTCOME = re.compile(r"outcome=(\w+) ref=(\S+) via=(\w+) (?:message_id=(\S+)|error=(.*))")


def env_for(emulator_url: str, **settings: str) -> dict[str, str]:
    return {**CREDENTIALS, "VORTEXT_BASE_URL": emulator_url, **settings}


def outcomes(lines: list[str]) -> dict[str, list[tuple[str, str, str | None]]]:
    """ref -> [(outcome, via, message_id)] from the app's ``notify`` log lines."""
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    for line in lines:
        match = OUTCOME.search(line)
        if match:
            outcome, ref, via, message_id, _ = match.groups()
            found.setdefault(ref, []).append((outcome, via, message_id))
    return found


def stored_refs(emulator: Any) -> dict[str, list[str]]:
    """ref -> message ids the emulator accepted for it."""
    refs: dict[str, list[str]] = {}
    for sms in emulator.messages():
        refs.setdefault((sms.metadata or {})["ref"], []).append(sms.message_id)
    return refs


def notify(http: httpx.AsyncClient, ref: str) -> Any:
    return http.post("/notify", json={"phone": PHONE, "text": f"notification {ref}", "ref": ref})


# -- the example app in a subprocess ----------------------------------------------


def example_app() -> Any:
    """The example app as a uvicorn factory, plus what the tests check from outside.

    Each answer carries ``X-Worker-Pid`` (which worker served it), and once the
    example's lifespan has ended (the client closed) the tasks still pending in the
    process are logged on one ``LEFTOVER-TASKS`` line.
    """
    example = load_example()
    app = example.create_app()
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            yield state
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        # uvicorn's own: the server's main task (serve) and nothing else.
        names = sorted(_describe(t) for t in leftover)
        logging.getLogger("notify").warning("%s %d %s", LEFTOVER_MARK, len(names), names)

    app.router.lifespan_context = lifespan

    pid = str(os.getpid()).encode()

    def worker_pid(inner_app: Any) -> Any:  # a plain ASGI middleware
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            async def tag(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), (b"x-worker-pid", pid)]
                await send(message)

            await inner_app(scope, receive, tag)

        return wrapped

    app.add_middleware(worker_pid)
    return app


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", repr(coro))


async def spawn_uvicorn(
    env: Mapping[str, str], log: Path, *args: str, port: int | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start the example app under ``uvicorn --factory`` and wait until it answers.

    Its stderr (the app's log) goes to the file ``log``.
    """
    port = port or free_port()
    command = (
        *("-m", "uvicorn", "--factory", "tests.support.uvicorn_server:example_app"),
        *("--app-dir", str(ROOT)),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        *args,
    )
    return await _spawn(command, env, log, port)


async def spawn_gunicorn(
    env: Mapping[str, str], log: Path, *args: str, port: int | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Start gunicorn with uvicorn workers on the example app; wait until it answers.

    Its stderr (gunicorn's and the app's log) goes to the file ``log``.
    """
    from gunicorn.config import KNOWN_SETTINGS

    port = port or free_port()
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        args = ("--no-control-socket", *args)  # gunicorn 25+ would open one in ~/.gunicorn
    # uvicorn.workers is deprecated in favour of the uvicorn-worker package
    worker = "uvicorn.workers.UvicornWorker"
    if importlib.util.find_spec("uvicorn_worker") is not None:
        worker = "uvicorn_worker.UvicornWorker"
    command = (
        *("-m", "gunicorn", "tests.support.uvicorn_server:example_app()"),
        *("--worker-class", worker),
        *("--chdir", str(ROOT)),
        *("--bind", f"127.0.0.1:{port}"),
        *args,
    )
    return await _spawn(command, env, log, port)


async def _spawn(
    command: tuple[str, ...], env: Mapping[str, str], log: Path, port: int
) -> tuple[asyncio.subprocess.Process, str]:
    with log.open("wb") as stderr:  # the child keeps its own copy
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 30
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{command[1]} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url + "/health")).status_code == 200:
                    return process, url
            if loop.time() > give_up:
                process.kill()
                raise RuntimeError(f"{command[1]} did not become ready")
            await asyncio.sleep(0.05)  # readiness polling of a subprocess
