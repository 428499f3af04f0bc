"""Rate limiter benchmarks, as ratios against aiolimiter and pyrate-limiter in the same run.

    python benchmarks/bench_limiter.py [--quick] [--no-redis]

1. one uncontended acquire (nothing ever waits): CPU microseconds per acquire;
2. 10,000 waiters released at 100 per 10 ms: CPU microseconds per grant, and
   wake-ups per grant (how many times a waiting task is resumed, per grant;
   1.0 is the floor for a task that has to wait at all) and event-loop callbacks
   per grant (every timer, future callback and task step the loop ran);
3. the Redis limiter: acquires per second (acquire + settle) from 1 and 4
   processes against one local redis-server (needs ``redis-server`` on PATH).

Lower is better except acquires per second.  Ratios are "theirs / ours".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vortext_async._limiter import RateLimit, RateLimiter

Acquire = Callable[[], Awaitable[None]]


def ours(n: int, seconds: float) -> Acquire:
    limiter = RateLimiter(RateLimit(windows=((n, seconds),)))

    async def acquire() -> None:
        async with limiter.acquire():
            pass

    return acquire


def aiolimiter_(n: int, seconds: float) -> Acquire:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(n, seconds)

    async def acquire() -> None:
        async with limiter:
            pass

    return acquire


def pyrate(n: int, seconds: float) -> Acquire:
    from pyrate_limiter import Limiter, Rate

    limiter = Limiter(Rate(n, round(seconds * 1000)))

    async def acquire() -> None:
        await limiter.try_acquire_async("bench")

    return acquire


CONTENDERS: dict[str, Callable[[int, float], Acquire]] = {
    "vortext-async": ours,
    "aiolimiter": aiolimiter_,
    "pyrate-limiter": pyrate,
}


async def uncontended(make: Callable[[int, float], Acquire], count: int) -> float:
    acquire = make(10**12, 3600.0)
    for _ in range(100):
        await acquire()
    best = float("inf")
    for _ in range(5):  # best of 5: the machine may be busy with something else
        start = time.process_time()
        for _ in range(count // 5):
            await acquire()
        best = min(best, (time.process_time() - start) / (count // 5) * 1e6)
    return best


class Counter:
    """Counts event-loop callbacks run, and those that resume one of ``tasks``."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.callbacks = 0
        self.wakeups = 0
        self._original = asyncio.events.Handle._run

    def __enter__(self) -> Counter:
        counter, original = self, self._original

        def run(handle: asyncio.Handle) -> None:
            counter.callbacks += 1
            if getattr(handle._callback, "__self__", None) in counter.tasks:  # type: ignore[attr-defined]
                counter.wakeups += 1
            original(handle)

        asyncio.events.Handle._run = run  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]


async def crowd(
    make: Callable[[int, float], Acquire], waiters: int
) -> tuple[float, float, float, float]:
    acquire = make(100, 0.01)
    with Counter() as counter:
        start_cpu, start = time.process_time(), time.perf_counter()
        counter.tasks.update(asyncio.create_task(acquire()) for _ in range(waiters))
        await asyncio.gather(*counter.tasks)
        cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    waited = waiters - 100  # the first 100 go at once
    # each task's first step (start) is not a wake-up
    return (
        cpu / waiters * 1e6,
        (counter.wakeups - waiters) / waited,
        counter.callbacks / waiters,
        wall,
    )


def redis_worker(url: str, seconds: float) -> None:
    from vortext_async._redis_limiter import RedisRateLimiter

    async def main() -> None:
        limiter = RedisRateLimiter(RateLimit(windows=((10**12, 3600.0),)), url, account="bench")
        done = 0
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                async with limiter.acquire():
                    pass
                done += 1

        await asyncio.gather(*(loop() for _ in range(16)))
        await limiter.aclose()
        print(done)

    asyncio.run(main())


def redis_rates(seconds: float) -> dict[int, float]:
    from tests.support.redis_server import redis_server

    rates = {}
    with redis_server() as server:
        for processes in (1, 4):
            workers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--redis-worker", server.url, str(seconds)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(processes)
            ]
            rates[processes] = sum(int(w.communicate()[0]) for w in workers) / seconds
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis benchmark")
    parser.add_argument("--redis-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.redis_worker:
        redis_worker(args.redis_worker[0], float(args.redis_worker[1]))
        return
    count = 20_000 if args.quick else 200_000
    waiters = 2_000 if args.quick else 10_000
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")

    results: dict[str, dict[str, float]] = {}
    for name, make in CONTENDERS.items():
        cost = asyncio.run(uncontended(make, count))
        per_grant, wakeups, callbacks, wall = asyncio.run(crowd(make, waiters))
        results[name] = {
            "acquire_us": cost,
            "grant_us": per_grant,
            "wakeups": wakeups,
            "callbacks": callbacks,
            "wall": wall,
        }
    mine = results["vortext-async"]
    ideal = waiters / 100 * 0.01
    rows = [
        ("uncontended acquire, CPU us (best of 5)", "acquire_us"),
        (f"CPU us per grant, {waiters:,} waiters", "grant_us"),
        ("wake-ups per grant", "wakeups"),
        ("loop callbacks per grant", "callbacks"),
        (f"wall s, {waiters:,} grants (nominal {ideal:.2f})", "wall"),
    ]
    print(f"\n{'':44}" + "".join(f"{name:>16}" for name in results))
    for label, key in rows:
        cells = "".join(
            f"{results[name][key]:>9.2f} x{results[name][key] / mine[key]:<5.1f}"
            if name != "vortext-async"
            else f"{mine[key]:>16.2f}"
            for name in results
        )
        print(f"{label:44}{cells}")
    print("(x: theirs / ours)")

    if not args.no_redis:
        rates = redis_rates(1.0 if args.quick else 3.0)
        print("\nRedis acquires/s (acquire + settle, 16 tasks per process)")
        print(f"  1 process:   {rates[1]:>9,.0f}")
        print(f"  4 processes: {rates[4]:>9,.0f}  (x{rates[4] / rates[1]:.2f} of 1 process)")


if __name__ == "__main__":
    main()
