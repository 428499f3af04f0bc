"""What OpenTelemetry costs a send: CPU microseconds per send over a no-op transport.

    python benchmarks/bench_telemetry.py [--quick]

Each case runs in its own process (the global providers can be set once):

- ``absent``: ``opentelemetry`` cannot be imported;
- ``API, no SDK``: the API installed, no provider configured (the client records nothing);
- ``SDK, ...``: an SDK ``MeterProvider`` (a reader that is never collected) and/or
  ``TracerProvider`` (no span processor) set before the client.

Ratios are to ``absent`` in the same run.  Nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

CASES = (
    "absent",
    "API, no SDK",
    "SDK, metrics only",
    "SDK, traces only",
    "SDK, metrics + traces",
)


def _setup(case: str) -> None:
    if case == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif case.startswith("SDK"):
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        if "metrics" in case:
            metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        if "traces" in case:
            trace.set_tracer_provider(TracerProvider())


async def _measure(n: int) -> float:
    import httpx
    from bench_throughput import _noop_transport

    from vortext_async import VortextClient

    async with VortextClient(
        "bench",
        "bench",
        base_url="http://bench.invalid",
        http_library="httpx",
        transport=_noop_transport(httpx, direct=True),
    ) as client:
        for _ in range(200):
            await client.send_sms("+33612345678", "Your code is 123456")
        samples = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(n // 5):
                await client.send_sms("+33612345678", "Your code is 123456")
            samples.append((time.process_time() - start) / (n // 5) * 1e6)
    return statistics.median(samples)


def _child(case: str, n: int) -> None:
    _setup(case)
    print(json.dumps(asyncio.run(_measure(n))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sends")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = 5_000 if args.quick else 50_000
    if args.case:
        _child(args.case, n)
        return
    results: dict[str, Any] = {}
    for case in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, *(["--quick"] if args.quick else [])],
            capture_output=True,
            text=True,
            check=True,
        )
        results[case] = json.loads(out.stdout)
    print("\n## CPU per send, no-op direct transport (median of 5)\n")
    print("| OpenTelemetry | us per send | x absent |")
    print("| --- | --- | --- |")
    for case, micros in results.items():
        print(f"| {case} | {micros:.1f} | {micros / results['absent']:.2f} |")


if __name__ == "__main__":
    main()
