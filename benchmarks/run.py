"""Run the whole benchmark suite: every ``benchmarks/bench_*.py``, one after the other.

    python benchmarks/run.py [--quick]        (or: nox -s bench / nox -s bench_smoke)

Each benchmark runs in its own process (``--quick`` is passed through: a tiny size
for CI, whose numbers mean nothing) and prints its own tables; a benchmark that is
not there yet is skipped with a message.  Then the throughput figures are drawn to
``benchmarks/results/throughput.png`` (``throughput-quick.png`` with ``--quick``)
when matplotlib is installed (the ``bench`` dependency group).  Nothing here passes
or fails on a number: the exit status only says whether every benchmark ran.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: In this order; any other bench_*.py found runs after them.
SUITE = (
    "bench_throughput.py",
    "bench_limiter.py",
    "bench_bulk.py",
    "bench_journal.py",
    "bench_fastapi.py",
    "bench_learned.py",
)


def _benchmarks() -> list[Path]:
    found = {path.name: path for path in HERE.glob("bench_*.py")}
    ordered = [found.pop(name) for name in SUITE if name in found]
    return ordered + sorted(found.values())


def chart(data: dict[str, object], target: Path) -> bool:
    """Sends per second by concurrency, one line per case; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    throughput = data["throughput"]
    assert isinstance(throughput, dict)
    figure, axes = plt.subplots(figsize=(9, 5.5))
    colours = plt.get_cmap("tab20")
    for index, (label, row) in enumerate(throughput.items()):
        levels = sorted(int(n) for n in row)
        style = "-" if label.startswith("VortextClient") else "--"
        width = 2.5 if label.startswith("VortextClient") or label == "aiohttp" else 1.2
        axes.plot(
            levels,
            [row[str(n)] for n in levels],
            style,
            marker="o",
            linewidth=width,
            color=colours(index % 20),
            label=label,
        )
    axes.set_xscale("log", base=2)
    axes.set_xticks([int(n) for n in data["concurrency"]])  # type: ignore[union-attr]
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("concurrent sends")
    axes.set_ylabel("sends per second (median)")
    quick = " (--quick: not meaningful)" if data.get("quick") else ""
    python = f", Python {data['python']}" if data.get("python") else ""
    axes.set_title(f"POST /sms against one local aiohttp server, 2 cores{python}{quick}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: it runs (CI)")
    args = parser.parse_args()

    failed: list[str] = []
    for name in SUITE:
        if not (HERE / name).exists():
            print(f"== {name}: not there yet, skipped\n", flush=True)
    for path in _benchmarks():
        command = [sys.executable, str(path), *(["--quick"] if args.quick else [])]
        print(f"== {path.name} {'--quick' if args.quick else ''}".rstrip(), flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=HERE.parent)
        print(
            f"== {path.name}: exit {code} after {time.perf_counter() - start:.0f} s\n", flush=True
        )
        if code != 0:
            failed.append(path.name)

    suffix = "-quick" if args.quick else ""  # a smoke run never replaces the real figures
    data_file = RESULTS / f"throughput{suffix}.json"
    if data_file.exists():
        target = RESULTS / f"throughput{suffix}.png"
        if chart(json.loads(data_file.read_text()), target):
            print(f"chart: {target.relative_to(HERE.parent)}")
        else:
            print("chart skipped: matplotlib is not installed (dependency group `bench`)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
