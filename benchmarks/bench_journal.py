"""One campaign on three hosts: the PostgreSQL journal against SQLite journals, same run.

    python benchmarks/bench_journal.py [--quick] [--count N] [--hosts H] [--concurrency C]

The emulator (``vortext_async.emulator``) is served on loopback by this process; each
host is a process of its own sending through a real ``VortextClient`` with
``send_bulk``.  A throwaway PostgreSQL is started here (``initdb`` as in the tests,
``fsync=on`` so that its commits are as durable as SQLite's ``synchronous=FULL``).

- ``no journal``: each host sends its own share without a journal (what the
  server and the client cost; the journals add to it);
- ``sqlite``: the baseline.  A SQLite journal cannot be shared, so each host sends
  its own third of the campaign with its own journal file (what one would do today).
- ``postgres``: every host reads the whole campaign and shares one PostgreSQL
  journal: each message is claimed by one host, the others skip it.

Reported per scenario: wall time (all hosts started to all hosts done), sends per
second, the ratio to ``sqlite``, the CPU time of the hosts, the emulator and the
PostgreSQL server together (on a shared machine a steadier comparison than wall time)
and its ratio, peak RSS of the largest host (its own ``VmHWM``), double sends (from the
emulator's own store) and messages accounted for (results of all hosts).  ``postgres``
also runs at a tenth of the size, to show that a host's memory does not grow with the
campaign.  Nothing passes or fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vortext_async import RetryPolicy, Sms, VortextClient  # noqa: E402
from vortext_async._bulk import send_bulk  # noqa: E402

JOB = "bench-campaign"


def messages(start: int, stop: int) -> Iterator[Sms]:
    for n in range(start, stop):
        yield Sms(f"+336{n:08d}", f"Your code is {n % 10_000:04d}", key=f"m{n}")


async def host(
    base_url: str, journal: str, start: int, stop: int, concurrency: int, job_name: str
) -> None:
    async with VortextClient(
        "bench", "bench", base_url=base_url, retry=RetryPolicy.no_retries()
    ) as client:
        began = time.perf_counter()
        job = send_bulk(
            client,
            messages(start, stop),
            concurrency=concurrency,
            journal=journal if journal != "-" else None,  # "-": no journal
            job=job_name,
        )
        async for _ in job:
            pass
        duration = time.perf_counter() - began
    s = job.summary
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "sent": s.sent,
                "failed": s.failed,
                "uncertain": s.uncertain,
                "skipped": s.skipped,
                "duration": duration,
                "rss_mb": peak_kb / 1024,
            }
        )
    )


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB.

    Not ``ru_maxrss``: Linux carries it over ``execve`` from the process that spawned
    this one (the benchmark, whose emulator holds every message of the campaign), so a
    host would report the benchmark's size.  ``VmHWM`` is this program's own peak.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def server_cpu(server: Any) -> float:
    """CPU seconds used so far by a PostgreSQL server and its processes (Linux), else 0."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        pids = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()]
    except (OSError, ValueError):
        return 0.0
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if pid == postmaster:  # itself, and its children that have exited (sessions)
            total += sum(int(f) for f in fields[11:15])
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class EmulatorThread:
    """The emulator served on loopback from a thread of this process."""

    def __init__(self, stored: int) -> None:
        from vortext_async.emulator import Emulator

        self.emulator = Emulator(users={"bench": "bench"}, max_stored=stored)
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        from vortext_async.emulator import serve_emulator

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_emulator(self.emulator) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def run_hosts(
    base_url: str,
    journals: list[str],
    ranges: list[tuple[int, int]],
    concurrency: int,
    job_name: str,
) -> tuple[float, list[dict[str, Any]]]:
    began = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--host",
                base_url,
                journal,
                str(start),
                str(stop),
                str(concurrency),
                job_name,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for journal, (start, stop) in zip(journals, ranges, strict=True)
    ]
    results: list[dict[str, Any]] = []
    for process in processes:
        assert process.stdout is not None
        output = process.stdout.read()
        # wait4, not wait: the host's CPU time (user + system) comes with its status.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"a host failed: exit code {process.returncode}")
        result = json.loads(output.strip().splitlines()[-1])
        result["cpu"] = usage.ru_utime + usage.ru_stime
        results.append(result)
    return time.perf_counter() - began, results


def scenario(
    name: str,
    count: int,
    hosts: int,
    concurrency: int,
    journals: list[str],
    *,
    shared: bool,
    job_name: str = JOB,
    server: Any = None,
) -> dict[str, Any]:
    with EmulatorThread(stored=count + 1000) as served:
        before = resource.getrusage(resource.RUSAGE_SELF)
        server_before = server_cpu(server) if server is not None else 0.0
        if shared:
            ranges = [(0, count)] * hosts
        else:
            edges = [count * i // hosts for i in range(hosts + 1)]
            ranges = list(itertools_pairwise(edges))
        wall, results = run_hosts(served.url, journals, ranges, concurrency, job_name)
        after = resource.getrusage(resource.RUSAGE_SELF)
        # This process only serves the emulator while the hosts run.
        emulator_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        server_used = server_cpu(server) - server_before if server is not None else 0.0
        emulator = served.emulator
        received = emulator.stats.stored
        doubles = sum(n - 1 for n in emulator.duplicates().values())
    accounted = sum(r["sent"] + r["failed"] + r["uncertain"] for r in results)
    return {
        "name": name,
        "count": count,
        "wall": wall,
        "rate": count / wall,
        "rss_mb": max(r["rss_mb"] for r in results),
        "doubles": doubles,
        "received": received,
        "accounted": accounted,
        "skipped": sum(r["skipped"] for r in results),
        "cpu": sum(r["cpu"] for r in results) + emulator_cpu + server_used,
        "server_cpu": server_used,
        "hosts": results,
    }


def itertools_pairwise(values: list[int]) -> Iterator[tuple[int, int]]:
    return itertools.pairwise(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 messages: it runs (CI)")
    parser.add_argument("--count", type=int, help="messages in the campaign (100,000)")
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="per host")
    parser.add_argument("--host", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host:
        url, journal, start, stop, concurrency, job_name = args.host
        asyncio.run(host(url, journal, int(start), int(stop), int(concurrency), job_name))
        return

    from tests.support.postgres_server import SKIP_REASON, find_postgres_bin, running_postgres

    count = args.count or (3_000 if args.quick else 100_000)
    hosts, concurrency = args.hosts, args.concurrency
    if find_postgres_bin() is None:
        print(f"skipped: {SKIP_REASON}")
        return
    print(
        f"{hosts} hosts x 1 campaign of {count:,} messages, concurrency {concurrency} per "
        f"host, emulator on loopback, {os.cpu_count()} CPUs (shared machine: expect noise)"
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, running_postgres(fsync=True) as server:
        sqlite = [str(Path(tmp) / f"host{i}.db") for i in range(hosts)]
        none = ["-"] * hosts
        rows.append(
            scenario("no journal (own share)", count, hosts, concurrency, none, shared=False)
        )
        rows.append(scenario("sqlite (own share)", count, hosts, concurrency, sqlite, shared=False))
        shared = [server.url] * hosts
        rows.append(
            scenario(
                "postgres (shared)", count, hosts, concurrency, shared, shared=True, server=server
            )
        )
        small = max(count // 10, 100)
        rows.append(
            scenario(
                f"postgres, {small:,} messages",
                small,
                hosts,
                concurrency,
                shared,
                shared=True,
                job_name="bench-small",  # the same database, a job of its own
                server=server,
            )
        )
    base, base_cpu = rows[1]["wall"], rows[1]["cpu"]
    print(
        f"\n{'':28}{'wall s':>8}{'msg/s':>8}{'x sqlite':>9}{'CPU s':>8}{'x sqlite':>9}{'of PG':>7}"
        f"{'RSS MB':>8}{'doubles':>8}{'accounted':>18}{'skipped':>9}"
    )
    for row in rows:
        same = row["count"] == count
        ratio = f"{row['wall'] / base:.2f}" if same else "-"
        cpu_ratio = f"{row['cpu'] / base_cpu:.2f}" if same else "-"
        accounted = f"{row['accounted']:,}/{row['count']:,}"
        print(
            f"{row['name']:28}{row['wall']:8.1f}{row['rate']:8.0f}{ratio:>9}"
            f"{row['cpu']:8.1f}{cpu_ratio:>9}{row['server_cpu']:7.1f}"
            f"{row['rss_mb']:8.1f}{row['doubles']:8d}"
            f"{accounted:>18}{row['skipped']:9,}"
        )
    print(
        f"\nload average {os.getloadavg()[0]:.1f} at the end (2 cores: above 2, others wait).\n"
        "wall: all hosts started to all hosts done; CPU: what the hosts, the emulator and "
        "the PostgreSQL server used (less sensitive than wall time to other work on the "
        "machine), of which the server's in 'of PG'; RSS: the largest host's own peak "
        "(VmHWM); doubles: sends the emulator "
        "received more than once; accounted: results reported by the hosts (the shared "
        "runs also skip, on each host, what another holds)"
    )


if __name__ == "__main__":
    main()
