"""Bulk send benchmark: send_bulk against hand-written bounded loops, in the same run.

    python benchmarks/bench_bulk.py [--quick] [--count N] [--concurrency C] [--scenarios S]

Every message goes through a real ``VortextClient`` (limiter, retry policy, request
building, answer parsing) to an in-process transport that answers
``{"messageId": ...}`` at once, so the client and the bulk machinery are what is
measured.  Each scenario runs in its own process, so its peak RSS is its own:

- ``tasks``: a hand-written loop, a semaphore and one task per message (baseline);
- ``workers``: a hand-written pool of ``concurrency`` tasks sharing the input (baseline);
- ``bulk``: ``send_bulk`` without a journal;
- ``bulk+journal``: ``send_bulk`` with a SQLite journal in a temporary directory.

Reported: sends per second, microseconds per message, peak RSS above the idle client
(input from a generator: memory must not grow with the count; target < 50 MB) and
the ratio of each scenario's time to the faster baseline (target: bulk within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vortext_async import Outcome, Sms, VortextClient, VortextError
from vortext_async._bulk import send_bulk

SCENARIOS = ("tasks", "workers", "bulk", "bulk+journal")


def transport(library: str) -> Any:
    """A transport of ``library`` that answers every request with a new message id."""
    lib = __import__(library)
    counter = itertools.count(1)
    headers = [(b"content-type", b"application/json")]

    class Instant(lib.AsyncBaseTransport):  # type: ignore[misc, name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            body = b'{"messageId": "m-%d"}' % next(counter)
            return lib.Response(200, headers=headers, content=body, request=request)

    return Instant()


def messages(count: int) -> Iterator[Sms]:
    for n in range(count):
        yield Sms(f"+336{n % 100_000_000:08d}", f"Your code is {n % 10_000:04d}")


def rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


async def run_tasks(client: VortextClient, count: int, concurrency: int) -> int:
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    sent = 0

    async def one(sms: Sms) -> None:
        nonlocal sent
        try:
            await client.send(sms, max_wait=None)
            sent += 1
        except VortextError:
            pass
        finally:
            slots.release()

    for sms in messages(count):
        await slots.acquire()
        task = asyncio.create_task(one(sms))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    return sent


async def run_workers(client: VortextClient, count: int, concurrency: int) -> int:
    source = messages(count)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        for sms in source:
            try:
                await client.send(sms, max_wait=None)
                sent += 1
            except VortextError:
                pass

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def run_bulk(client: VortextClient, count: int, concurrency: int, journal: str | None) -> int:
    sent = 0
    async for result in send_bulk(
        client, messages(count), concurrency=concurrency, journal=journal
    ):
        sent += result.outcome is Outcome.SENT
    return sent


async def scenario(name: str, count: int, concurrency: int, library: str) -> dict[str, Any]:
    async with VortextClient(
        "bench",
        "bench",
        base_url="http://bench.invalid",
        transport=transport(library),
        http_library=library,  # type: ignore[arg-type]
    ) as client:
        for sms in messages(200):  # warm up: imports, pools, caches
            await client.send(sms)
        idle = rss_now()
        with tempfile.TemporaryDirectory() as directory:
            journal = os.path.join(directory, "bench.db") if name == "bulk+journal" else None
            start = time.perf_counter()
            if name == "tasks":
                sent = await run_tasks(client, count, concurrency)
            elif name == "workers":
                sent = await run_workers(client, count, concurrency)
            else:
                sent = await run_bulk(client, count, concurrency, journal)
            seconds = time.perf_counter() - start
            size = Path(journal).stat().st_size if journal else 0  # noqa: ASYNC240
    assert sent == count, f"{name}: {sent} of {count} sent"
    return {
        "name": name,
        "seconds": seconds,
        "rate": count / seconds,
        "rss_above_idle": max(0, rss_peak() - idle),
        "journal_bytes": size,
    }


def run_in_child(name: str, count: int, concurrency: int, library: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", name, "--count", str(count)]
    command += ["--concurrency", str(concurrency), "--library", library]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 messages, one round")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="runs per scenario (best kept)")
    parser.add_argument("--library", default="httpx2" if _has("httpx2") else "httpx")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset to run"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    count = args.count or (20_000 if args.quick else 1_000_000)

    if args.child:
        result = asyncio.run(scenario(args.child, count, args.concurrency, args.library))
        print(json.dumps(result))
        return

    rounds = args.rounds or (1 if args.quick or count >= 500_000 else 3)
    print(
        f"python {sys.version.split()[0]}, {args.library}, {os.cpu_count()} CPUs; "
        f"{count:,} messages, concurrency {args.concurrency}, best of {rounds}"
    )
    chosen = [name for name in SCENARIOS if name in args.scenarios.split(",")]
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name in chosen:  # interleaved, so drift hits every scenario alike
            result = run_in_child(name, count, args.concurrency, args.library)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    baselines = [best[name]["seconds"] for name in ("tasks", "workers") if name in best]
    baseline = min(baselines) if baselines else None
    print(f"\n{'':14}{'sends/s':>10}{'µs/msg':>9}{'RSS +MB':>9}{'x baseline':>12}")
    for name in chosen:
        r = best[name]
        ratio = f"{r['seconds'] / baseline:>12.3f}" if baseline else f"{'-':>12}"
        print(
            f"{name:14}{r['rate']:>10,.0f}{1e6 * r['seconds'] / count:>9.1f}"
            f"{r['rss_above_idle'] / 2**20:>9.1f}{ratio}"
        )
    if baseline and "bulk" in best:
        print(
            "\nbulk overhead vs the faster hand-written loop: "
            f"{100 * (best['bulk']['seconds'] / baseline - 1):+.1f}% (target within 10%)"
        )
    if "bulk" in best and "bulk+journal" in best:
        journal_cost = best["bulk+journal"]["seconds"] / best["bulk"]["seconds"]
        print(
            f"journal on vs off: x{journal_cost:.2f} time; journal file "
            f"{best['bulk+journal']['journal_bytes'] / 2**20:.1f} MB"
        )


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
