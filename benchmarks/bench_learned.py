"""Caps learned from 429s: a client given no ``rate_limit`` against a rolling-window server.

    python benchmarks/bench_learned.py [--quick]

A burst of sends at once (60; ``--quick``: 30) to a local server that accepts 10
sends in any second and answers the others 429, in real time on loopback:

- the rolling-window fault server of the tests (``tests/support/window_server.py``:
  no ``Retry-After``, each request counted up to 30 ms late), and
- the emulator served on loopback (``Retry-After`` in whole seconds).

Cases, same server, same run: ``no caps (learned)`` (the default client), ``no caps,
no learning`` (``rate_limit=RateLimit()``, the behaviour before), and ``caps
configured`` (``RateLimit(windows=[(10, 1.0)])``, the baseline).  Printed: sends
that succeeded, refusals after the first wave (the first wave's are unavoidable:
all go at once), and the time against the ideal ((sends / 10 - 1) s: ten at once,
then ten a second) and against the configured client.  Nothing passes or fails.

Then a bulk job (``send_bulk``, concurrency 64) against accounts capped **per minute**
(20; 200 messages) and **per hour** (100; 150 messages), in virtual time: the
emulator in-process and a ``VirtualClock``, so hours of pacing take a second and the
numbers are exact, not noisy.  Cases: ``no caps (learned)``, ``no caps, refusals
final`` (``rate_limit_patience=0``: the behaviour before a bulk job sent a 429'd
message again) and ``caps configured``.  Printed: sent, failed, refusals after the
first wave (the server's refusals after the first second), virtual time against the
ideal (the cap at once, then the cap each window: (ceil(messages / cap) - 1) windows).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.window_server import WindowServer  # noqa: E402
from vortext_async import Outcome, RateLimit, RetryPolicy, SentSms, Sms, VortextClient  # noqa: E402
from vortext_async.emulator import Emulator, serve_emulator  # noqa: E402
from vortext_async.testing import VirtualClock, emulator_client  # noqa: E402

CAP = (10, 1.0)
RETRY = RetryPolicy(attempts=10, timeout=120.0)  # room to learn: the verdict is the pace


async def _burst(url: str, rate_limit: RateLimit | None, sends: int) -> tuple[int, float]:
    """Sends accepted (a 2xx answer) and the seconds the burst took."""
    base_url = url.removesuffix("/sms")
    async with VortextClient(
        "demo", "demo", base_url=base_url, rate_limit=rate_limit, retry=RETRY
    ) as client:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(client.send_sms("+33611272727", f"n{i}") for i in range(sends)),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - start
    # The window server's 200 has no message id: the client calls it uncertain.
    accepted = sum(
        isinstance(result, SentSms)
        or getattr(getattr(result, "cause", None), "body", None) == b'{"ok": true}'
        for result in results
    )
    return accepted, elapsed


async def _on_window_server(rate_limit: RateLimit | None, sends: int) -> tuple[int, int, float]:
    async with WindowServer([CAP]) as server:
        ok, elapsed = await _burst(server.url, rate_limit, sends)
        return ok, server.refused, elapsed


async def _on_emulator(rate_limit: RateLimit | None, sends: int) -> tuple[int, int, float]:
    emulator = Emulator(users={"demo": "demo"}, windows=[CAP], count_delay=0.03, seed=3)
    async with serve_emulator(emulator) as url:
        ok, elapsed = await _burst(url, rate_limit, sends)
    return ok, emulator.stats.refused, elapsed


CASES: dict[str, RateLimit | None] = {
    "no caps (learned)": None,
    "no caps, no learning": RateLimit(),
    "caps configured": RateLimit(windows=[CAP]),
}


async def _bulk_in_virtual_time(
    cap: tuple[int, float], messages: int, rate_limit: RateLimit | None, patience: float
) -> tuple[int, int, int, float]:
    """Sent, failed, refusals after the first second, and the virtual seconds taken."""
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[cap], count_delay=0.03, seed=5, clock=clock
    )
    first_wave: list[int] = []

    async def watch() -> None:
        await clock.sleep(1.0)
        first_wave.append(emulator.stats.refused)

    async with emulator_client(emulator, rate_limit=rate_limit, clock=clock) as client:
        watcher = asyncio.create_task(watch())
        job = client.send_bulk(
            (Sms(f"+336100{n:05d}", f"message {n}") for n in range(messages)),
            concurrency=64,
            rate_limit_patience=patience,
        )
        outcomes = [result.outcome async for result in job]
        elapsed = clock.time()
        await watcher
    after = emulator.stats.refused - (first_wave[0] if first_wave else 0)
    return outcomes.count(Outcome.SENT), outcomes.count(Outcome.FAILED), after, elapsed


BULK_CASES: dict[str, tuple[bool, float]] = {  # (caps configured, patience)
    "no caps (learned)": (False, 7200.0),
    "no caps, refusals final": (False, 0.0),
    "caps configured": (True, 7200.0),
}


async def bulk_accounts() -> None:
    for title, cap, messages in (
        ("20 per minute", (20, 60.0), 200),
        ("100 per hour", (100, 3600.0), 150),
    ):
        ideal = (math.ceil(messages / cap[0]) - 1) * cap[1]
        print(
            f"\n## bulk job, {messages} messages, concurrency 64, account of {title} "
            f"(virtual time; ideal {ideal:.0f} s)\n"
        )
        print("| case | sent | failed | refused after the first wave | time (s) | x ideal |")
        print("| --- | --- | --- | --- | --- | --- |")
        for label, (configured, patience) in BULK_CASES.items():
            rate_limit = RateLimit(windows=[cap]) if configured else None
            logging.getLogger("vortext_async").setLevel(logging.ERROR)  # the learned line
            sent, failed, after, elapsed = await _bulk_in_virtual_time(
                cap, messages, rate_limit, patience
            )
            print(
                f"| {label} | {sent}/{messages} | {failed} | {after} | {elapsed:.0f} "
                # a job that failed messages did not do the work: no ratio to the ideal
                f"| {f'{elapsed / ideal:.2f}' if not failed else '-'} |",
                flush=True,
            )


def _quiet_shutdown(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # The fault server cancels its open connections when it stops: not news.
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def main(sends: int) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_shutdown)
    first_wave = sends - CAP[0]
    ideal = (sends / CAP[0] - 1) * CAP[1]
    for title, run in (("window server", _on_window_server), ("emulator", _on_emulator)):
        rows: dict[str, tuple[int, int, float]] = {}
        for label, rate_limit in CASES.items():
            rows[label] = await run(rate_limit, sends)
        configured = rows["caps configured"][2]
        print(f"\n## {sends} sends at once, {title}, 10 per second (ideal {ideal:.1f} s)\n")
        print(
            "| case | sent | refused after the first wave | % of sends | time (s) "
            "| x ideal | x configured |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, (ok, refused, elapsed) in rows.items():
            after = refused - first_wave if refused >= first_wave else refused
            print(
                f"| {label} | {ok}/{sends} | {after} | {after / sends:.0%} | {elapsed:.2f} "
                f"| {elapsed / ideal:.2f} | {elapsed / configured:.2f} |",
                flush=True,
            )


def _parse() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 sends instead of 60")
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    asyncio.run(main(30 if args.quick else 60))
    asyncio.run(bulk_accounts())  # virtual time: the same size with --quick
