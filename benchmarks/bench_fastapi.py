"""POST /notify throughput: one shared client (vortext_lifespan) vs a client per request.

    python benchmarks/bench_fastapi.py [--quick]

Starts the emulator (no caps) and two FastAPI apps, each in its own uvicorn process
on loopback: ``shared`` (the integration: one VortextClient for the app's life) and
``per_request`` (the common mistake: ``async with httpx.AsyncClient()`` in the
endpoint).  Drives each with the same load (concurrent POST /notify), in
alternating rounds, and prints requests per second (median of rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from vortext_async.fastapi import VortextClientDep, install_error_handlers, vortext_lifespan

HERE = Path(__file__).resolve().parent
AUTH = ("demo", "demo")


def _shared_app() -> Any:
    app = FastAPI(lifespan=vortext_lifespan())
    install_error_handlers(app)

    @app.post("/notify")
    async def notify(body: dict[str, str], client: VortextClientDep) -> dict[str, str]:
        sent = await client.send_sms(body["phone"], body["text"], max_wait=2.0)
        return {"messageId": sent.message_id}

    return app


def _per_request_app() -> Any:
    base_url = os.environ["VORTEXT_BASE_URL"]
    app = FastAPI()

    @app.post("/notify")
    async def notify(body: dict[str, str]) -> dict[str, str]:
        async with httpx.AsyncClient(base_url=base_url, auth=AUTH) as http:
            response = await http.post(
                "/sms", json={"phoneNumber": body["phone"], "message": body["text"]}
            )
            response.raise_for_status()
            return {"messageId": response.json()["messageId"]}

    return app


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(400):
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited")
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # readiness polling
    raise RuntimeError(f"{url} never answered")


async def _round(url: str, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        body = {"phone": "+33611272727", "text": "bench"}
        await asyncio.gather(*(http.post("/notify", json=body) for _ in range(concurrency)))
        queue = iter(range(total))
        failures = 0

        async def user() -> None:
            nonlocal failures
            for _ in queue:
                response = await http.post("/notify", json=body)
                if response.status_code != 200:
                    failures += 1
                    print(url, response.status_code, response.text[:200], file=sys.stderr)

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} of {total} requests failed")
    return total / elapsed


async def main(quick: bool) -> None:
    total, concurrency, rounds = (300, 16, 3) if quick else (1000, 32, 3)
    emulator_port, shared_port, naive_port = _port(), _port(), _port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    code = (
        "from vortext_async.emulator import Emulator, run_emulator;"
        f"run_emulator(Emulator(max_stored=1000), port={emulator_port}, server='uvicorn')"
    )
    env = {
        "VORTEXT_USERNAME": "demo",
        "VORTEXT_PASSWORD": "demo",
        "VORTEXT_BASE_URL": emulator_url,
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(HERE)]
    uvicorn += ["--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]
    processes = [
        _start([sys.executable, "-c", code], env),
        _start([*uvicorn, "--port", str(shared_port), "bench_fastapi:_shared_app"], env),
        _start([*uvicorn, "--port", str(naive_port), "bench_fastapi:_per_request_app"], env),
    ]
    try:
        apps = {
            "shared client (vortext_lifespan)": f"http://127.0.0.1:{shared_port}",
            "httpx.AsyncClient per request": f"http://127.0.0.1:{naive_port}",
        }
        await _ready(emulator_url + "/status", processes[0])
        for url, process in zip(apps.values(), processes[1:], strict=True):
            await _ready(url + "/docs", process)
        figures: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, url in apps.items():
                figures[name].append(await _round(url, total, concurrency))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    print(f"POST /notify, {total} requests x {rounds} rounds, concurrency {concurrency}")
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, median in medians.items():
        print(f"  {name:36} {median:8.0f} req/s (median)")
    shared, naive = medians.values()
    print(f"  ratio shared / per-request: {shared / naive:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (CI smoke)")
    asyncio.run(main(parser.parse_args().quick))
