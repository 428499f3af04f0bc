"""Send throughput: the client against raw aiohttp, httpx and httpx2, in the same run.

    python benchmarks/bench_throughput.py [--quick] [--repeat N] [--json PATH] [--no-profile]
        [--more]

1. POSTs per second against one local aiohttp server (``_server.py``, its own
   process) at concurrency 1, 16, 64 and 256: raw ``aiohttp``, raw ``httpx`` and
   ``httpx2`` (default httpcore transport), and ``VortextClient.send_sms`` (no caps,
   retries on) as installed (``VortextClient()``: the direct aiohttp path) and over
   httpcore (``transport="httpx"``), for each library (``--more``: also raw clients
   over the third-party ``httpx-aiohttp`` transport and over ours).  Each figure is the
   median of ``--repeat`` timed windows (each after a warm-up, each with a fresh
   client); ratios are to raw aiohttp and to the raw client of the same library.
2. CPU microseconds per send in-process, against a no-op transport (no network): the
   client's own cost next to httpx's floor, and a cProfile of where it goes.

The machine this runs on may be busy: numbers are noisy, compare ratios within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import importlib.util
import json
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _server import running_server  # noqa: E402

from vortext_async import Outcome, Sms, VortextClient  # noqa: E402

CONCURRENCY = (1, 16, 64, 256)
BODY = b'{"phoneNumber":"+33612345678","message":"Your code is 123456"}'
HEADERS = {
    "Authorization": "Basic YmVuY2g6YmVuY2g=",
    "Accept": "application/json",
    "Content-Type": "application/json",
}

T = TypeVar("T")
Send = Callable[[], Awaitable[object]]
Table = dict[str, dict[int, list[float]]]
# A case: builds (send, stack) inside the running loop; the stack closes the client.
Case = Callable[[str, AsyncExitStack], Awaitable[Send]]


#: The event loop the measured clients run on: asyncio's own unless ``--uvloop``.
_LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
        return runner.run(coro)


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# -- cases ---------------------------------------------------------------------------


async def raw_aiohttp(url: str, stack: AsyncExitStack) -> Send:
    import aiohttp

    session = await stack.enter_async_context(aiohttp.ClientSession())
    sms_url = url + "/sms"

    async def send() -> bytes:
        async with session.post(sms_url, data=BODY, headers=HEADERS) as response:
            return await response.read()

    return send


def raw_httpx(library: str, *, transport: str = "httpcore") -> Case:
    async def case(url: str, stack: AsyncExitStack) -> Send:
        lib = importlib.import_module(library)
        options: dict[str, Any] = {}
        if transport == "httpx-aiohttp":
            module = "httpx_aiohttp" if library == "httpx" else "httpx_aiohttp.httpx2"
            options["transport"] = importlib.import_module(module).AiohttpTransport()
        elif transport == "aiohttp":
            from vortext_async._http import aiohttp_transport

            options["transport"] = aiohttp_transport(lib)
        client = await stack.enter_async_context(lib.AsyncClient(**options))
        sms_url = url + "/sms"

        async def send() -> bytes:
            response = await client.post(sms_url, content=BODY, headers=HEADERS)
            return response.content  # type: ignore[no-any-return]

        return send

    return case


def vortext(library: str, *, transport: str = "auto") -> Case:
    async def case(url: str, stack: AsyncExitStack) -> Send:
        client = VortextClient(
            "bench", "bench", base_url=url, http_library=library, transport=transport
        )
        stack.push_async_callback(client.aclose)

        async def send() -> object:
            return await client.send_sms("+33612345678", "Your code is 123456")

        return send

    return case


def cases(*, more: bool = False) -> dict[str, Case]:
    """Every case whose libraries are installed, by row label.

    The rows of the README: raw aiohttp, raw httpx/httpx2 (httpcore), and
    ``VortextClient()`` as installed (the direct aiohttp path) and with
    ``transport="httpx"`` (httpcore).  ``more``: also raw ``AsyncClient.post`` over the
    third-party ``httpx-aiohttp`` transport and over ours.
    """
    found: dict[str, Case] = {"aiohttp": raw_aiohttp}
    libraries = [name for name in ("httpx", "httpx2") if _have(name)]
    for library in libraries:
        found[f"{library}"] = raw_httpx(library)
    if more:
        if _have("httpx_aiohttp"):
            for library in libraries:
                found[f"{library} + httpx-aiohttp"] = raw_httpx(library, transport="httpx-aiohttp")
        for library in libraries:
            found[f"{library} + vortext aiohttp transport"] = raw_httpx(
                library, transport="aiohttp"
            )
    for library in libraries:
        found[f"VortextClient/{library} default"] = vortext(library)
        found[f"VortextClient/{library} httpcore"] = vortext(library, transport="httpx")
    return found


# -- measuring -----------------------------------------------------------------------


class _GcTimer:
    """Seconds this process spent in the garbage collector while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.on:
            self.seconds += time.perf_counter() - self._started


async def _rate(
    case: Case, url: str, concurrency: int, warmup: float, window: float
) -> tuple[float, float, float]:
    """Sends per second over ``window`` seconds, after ``warmup`` seconds of sending, and
    this process's CPU microseconds per send over the same window, and of those, the
    microseconds the garbage collector took."""
    collector = _GcTimer()
    gc.callbacks.append(collector)
    try:
        return await _measured(case, url, concurrency, warmup, window, collector)
    finally:
        gc.callbacks.remove(collector)


async def _measured(
    case: Case, url: str, concurrency: int, warmup: float, window: float, collector: _GcTimer
) -> tuple[float, float, float]:
    async with AsyncExitStack() as stack:
        send = await case(url, stack)
        done = 0
        stop = False

        async def worker() -> None:
            nonlocal done
            while not stop:
                await send()
                done += 1

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        try:
            await asyncio.sleep(warmup)
            start_count, start, start_cpu = done, time.perf_counter(), time.process_time()
            collector.on = True
            await asyncio.sleep(window)
            collector.on = False
            end_count, end, end_cpu = done, time.perf_counter(), time.process_time()
        finally:
            stop = True
            results = await asyncio.gather(*workers, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"a send failed: {errors[0]!r}") from errors[0]
        sends = end_count - start_count
        per_send = 1e6 / max(sends, 1)
        return sends / (end - start), (end_cpu - start_cpu) * per_send, collector.seconds * per_send


def measure(
    url: str,
    concurrency: tuple[int, ...],
    repeat: int,
    warmup: float,
    window: float,
    only: list[str] | None = None,
    more: bool = False,
) -> tuple[Table, Table, Table]:
    """Sends per second, client CPU us per send and the garbage collector's share of it:
    {case: {concurrency: [one per repeat]}}."""
    table: Table = defaultdict(lambda: defaultdict(list))
    cpu_table: Table = defaultdict(lambda: defaultdict(list))
    gc_table: Table = defaultdict(lambda: defaultdict(list))
    found = {
        label: case
        for label, case in cases(more=more).items()
        if label == "aiohttp" or not only or any(word in label for word in only)
    }
    # Same-concurrency cells of every case run back to back, so each repeat gives a
    # ratio to aiohttp measured under the same machine conditions.
    for _ in range(repeat):
        for n in concurrency:
            for label, case in found.items():
                gc.collect()
                rate, cpu, in_gc = _run(_rate(case, url, n, warmup, window))
                table[label][n].append(rate)
                cpu_table[label][n].append(cpu)
                gc_table[label][n].append(in_gc)
                print(
                    f"  {label:<40} c={n:<4} {rate:8.0f}/s {cpu:6.0f} us CPU/send"
                    f" ({in_gc:4.1f} in gc)",
                    file=sys.stderr,
                    flush=True,
                )
    return table, cpu_table, gc_table


def _ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of per-repeat ratios (repeat i of both ran close together)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def print_cpu(cpu_table: Table, concurrency: tuple[int, ...]) -> None:
    """Client CPU per send: steadier than sends/s on a shared machine."""
    base = cpu_table["aiohttp"]
    print(
        "\n## Client CPU per send, us, during the same windows (median; x aiohttp's;"
        " lower is better)\n"
    )
    print("| case | " + " | ".join(f"c={n}" for n in concurrency) + " |")
    print("|" + "---|" * (len(concurrency) + 1))
    for label, row in cpu_table.items():
        cells = [
            f"{statistics.median(row[n]):,.0f} ({_ratio(row[n], base[n]):.2f}x)"
            for n in concurrency
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_gc(gc_table: Table, concurrency: tuple[int, ...]) -> None:
    """The garbage collector's part of the client CPU per send (Python's gen-0 passes
    follow the objects alive across event-loop turns)."""
    print("\n## Of which the garbage collector, us per send (median)\n")
    print("| case | " + " | ".join(f"c={n}" for n in concurrency) + " |")
    print("|" + "---|" * (len(concurrency) + 1))
    for label, row in gc_table.items():
        cells = [f"{statistics.median(row[n]):.1f}" for n in concurrency]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_throughput(table: Table, concurrency: tuple[int, ...]) -> None:
    base = table["aiohttp"]
    print(
        "\n## Sends per second (median; x aiohttp / x raw client of the same library,"
        " each the median of per-repeat ratios)\n"
    )
    header = "| case | " + " | ".join(f"c={n}" for n in concurrency) + " |"
    print(header)
    print("|" + "---|" * (len(concurrency) + 1))
    for label, row in table.items():
        base_lib = next((lib for lib in ("httpx2", "httpx") if lib in label), None)
        cells = []
        for n in concurrency:
            cell = f"{statistics.median(row[n]):,.0f} ({_ratio(row[n], base[n]):.2f}x"
            if base_lib is not None and label != base_lib and base_lib in table:
                cell += f" / {_ratio(row[n], table[base_lib][n]):.2f}x"
            cells.append(cell + ")")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for label, row in table.items():
        if not (label.startswith("VortextClient") and label.endswith("default")):
            continue
        goals = {1: 0.8, 64: 0.85, 256: 0.8}  # issue 18: VortextClient() as installed
        cells = [
            f"c={n} {_ratio(row[n], base[n]):.2f}x (goal >= {goal})"
            for n, goal in goals.items()
            if n in row
        ]
        print(f"{label} against aiohttp: " + ", ".join(cells))


# -- send_bulk against a bounded send_sms loop, same server ----------------------------


def _messages(count: int) -> Iterator[Sms]:
    for n in range(count):
        yield Sms(f"+336{n % 100_000_000:08d}", f"Your code is {n % 10_000:04d}")


async def _bulk_seconds(url: str, library: str, mode: str, count: int, concurrency: int) -> float:
    """Seconds to send ``count`` messages over the default path, all answered SENT."""
    async with VortextClient("bench", "bench", base_url=url, http_library=library) as client:
        for _ in range(concurrency):  # warm the pool
            await client.send_sms("+33612345678", "warm-up")
        sent = 0
        start = time.perf_counter()
        if mode == "send_bulk":
            async for result in client.send_bulk(_messages(count), concurrency=concurrency):
                sent += result.outcome is Outcome.SENT
        else:  # a bounded loop: `concurrency` workers sharing one iterator
            source = _messages(count)

            async def worker() -> None:
                nonlocal sent
                for sms in source:
                    await client.send(sms)
                    sent += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if sent != count:
        raise RuntimeError(f"{mode}: {sent} of {count} sent")
    return elapsed


def measure_bulk(
    url: str, library: str, count: int, concurrency: tuple[int, ...], repeat: int
) -> dict[int, dict[str, list[float]]]:
    """{concurrency: {mode: [seconds]}}, modes alternating so noise hits both."""
    table: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(repeat):
        for n in concurrency:
            for mode in ("send_sms loop", "send_bulk"):
                gc.collect()
                seconds = _run(_bulk_seconds(url, library, mode, count, n))
                table[n][mode].append(seconds)
                print(f"  {mode:<14} c={n:<4} {count / seconds:8.0f}/s", file=sys.stderr)
    return table


def print_bulk(table: dict[int, dict[str, list[float]]], library: str, count: int) -> None:
    print(
        f"\n## send_bulk vs a bounded send_sms loop ({count:,} messages, "
        f"VortextClient/{library} default, same server; goal: within 10 %)\n"
    )
    print("| concurrency | send_sms loop /s | send_bulk /s | send_bulk time / loop time |")
    print("|---|---|---|---|")
    for n, modes in table.items():
        loop = statistics.median(modes["send_sms loop"])
        bulk = statistics.median(modes["send_bulk"])
        # Each repeat's pair ran back to back: the median of the pairs' ratios.
        pairs = zip(modes["send_sms loop"], modes["send_bulk"], strict=True)
        ratio = statistics.median(bulk_time / loop_time for loop_time, bulk_time in pairs)
        print(f"| {n} | {count / loop:,.0f} | {count / bulk:,.0f} | {ratio:.2f} |")


# -- CPU per send, no network ----------------------------------------------------------


def _noop_transport(lib: Any, *, direct: bool = False) -> Any:
    """Answers every request at once; ``direct``: offers the direct path of the aiohttp
    transport (``prepare``/``exchange``), so the client builds no ``Request`` or
    ``Response`` and skips ``AsyncClient.send`` (as with the fast transport)."""
    answer = b'{"messageId":"m1"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"18")]

    class NoOp(lib.AsyncBaseTransport):  # type: ignore[misc]
        _vortext_direct = direct

        async def handle_async_request(self, request: Any) -> Any:
            return lib.Response(200, headers=headers, content=answer, request=request)

        def prepare(self, url: str, request_headers: Any) -> tuple[Any, Any]:
            return url, request_headers

        async def exchange(self, *_: Any, **__: Any) -> tuple[int, Any, bytes, str | None]:
            return 200, headers, answer, None  # the fourth item is a problem, not a reason

    return NoOp()


async def _cpu_cases(library: str, n: int) -> dict[str, float]:
    """CPU microseconds per send over the no-op transport, per way of sending."""
    lib = importlib.import_module(library)
    out: dict[str, float] = {}
    async with lib.AsyncClient(transport=_noop_transport(lib)) as http:
        request = http.build_request(
            "POST", "http://bench.invalid/sms", content=BODY, headers=HEADERS
        )

        async def prebuilt() -> None:
            await http.send(request)

        async def post() -> None:
            await http.post("http://bench.invalid/sms", content=BODY, headers=HEADERS)

        async with (
            VortextClient(
                "bench",
                "bench",
                base_url="http://bench.invalid",
                http_library=library,
                transport=_noop_transport(lib),
            ) as client,
            VortextClient(
                "bench",
                "bench",
                base_url="http://bench.invalid",
                http_library=library,
                transport=_noop_transport(lib, direct=True),
            ) as direct,
        ):

            async def ours() -> None:
                await client.send_sms("+33612345678", "Your code is 123456")

            async def ours_direct() -> None:
                await direct.send_sms("+33612345678", "Your code is 123456")

            for label, call in (
                (f"{library} AsyncClient.send(prebuilt request)", prebuilt),
                (f"{library} AsyncClient.post", post),
                (f"VortextClient/{library} send_sms", ours),
                (f"VortextClient/{library} send_sms, direct transport", ours_direct),
            ):
                for _ in range(min(n, 200)):
                    await call()
                samples = []
                for _ in range(5):
                    start = time.process_time()
                    for _ in range(n // 5):
                        await call()
                    samples.append((time.process_time() - start) / (n // 5) * 1e6)
                out[label] = statistics.median(samples)
    return out


_BUCKETS = (
    ("vortext_async", "vortext-async (ours)"),
    ("httpcore", "httpx/httpcore"),
    ("httpx", "httpx/httpcore"),
    ("h11", "httpx/httpcore"),
    ("tenacity", "tenacity"),
    ("cattrs", "attrs/cattrs"),
    ("attr", "attrs/cattrs"),
    ("asyncio", "asyncio"),
    ("json", "json"),
)


def _bucket(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    parts = Path(filename).parts
    for key, label in _BUCKETS:
        if any(part == key or part.startswith(key + "2") for part in parts):
            return label
    return "other"


async def _profile(library: str, n: int) -> pstats.Stats:
    lib = importlib.import_module(library)
    async with VortextClient(
        "bench",
        "bench",
        base_url="http://bench.invalid",
        http_library=library,
        transport=_noop_transport(lib, direct=True),
    ) as client:
        for _ in range(100):
            await client.send_sms("+33612345678", "Your code is 123456")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await client.send_sms("+33612345678", "Your code is 123456")
        profiler.disable()
    return pstats.Stats(profiler)


def print_profile(stats: pstats.Stats, n: int, top: int = 15) -> dict[str, float]:
    """Own time per send by package, and the top functions by own time."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    buckets: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        buckets[_bucket(filename)] += tottime
        total += tottime
        rows.append((tottime, ncalls, cumtime, f"{Path(filename).name}:{line}({name})"))
    print(f"\ncProfile, {n} sends (profiled times are inflated; shares are what matter):\n")
    print("| where (own time) | us/send | share |")
    print("|---|---|---|")
    for label, seconds in sorted(buckets.items(), key=lambda item: -item[1]):
        print(f"| {label} | {seconds / n * 1e6:.1f} | {seconds / total:.0%} |")
    print(f"\nTop {top} functions by own time:\n")
    print("| function | calls/send | own us/send | cum us/send |")
    print("|---|---|---|---|")
    for tottime, ncalls, cumtime, where in sorted(rows, reverse=True)[:top]:
        print(f"| {where} | {ncalls / n:.1f} | {tottime / n * 1e6:.1f} | {cumtime / n * 1e6:.1f} |")
    return {label: seconds / n * 1e6 for label, seconds in buckets.items()}


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny run: it works, numbers mean nothing"
    )
    parser.add_argument("--repeat", type=int, default=None, help="timed windows per cell")
    parser.add_argument(
        "--json", type=Path, help="where the figures go (default: results/throughput[-quick].json)"
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--more", action="store_true", help="also raw clients over httpx-aiohttp and ours"
    )
    parser.add_argument("--no-bulk", action="store_true", help="skip send_bulk vs send_sms")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the clients on uvloop (pip install uvloop)"
    )
    parser.add_argument("--concurrency", help="comma-separated concurrencies (default 1,16,64,256)")
    parser.add_argument(
        "--only", action="append", help="run only cases whose label contains this (repeatable)"
    )
    args = parser.parse_args()

    if args.uvloop:
        import uvloop

        global _LOOP_FACTORY
        _LOOP_FACTORY = uvloop.new_event_loop
    concurrency = (1, 64) if args.quick else CONCURRENCY
    if args.concurrency:
        concurrency = tuple(int(n) for n in args.concurrency.split(","))
    repeat = args.repeat or (1 if args.quick else 3)
    warmup, window = (0.1, 0.3) if args.quick else (0.5, 2.0)
    cpu_sends = 500 if args.quick else 5000

    bulk_library = "httpx2" if _have("httpx2") else "httpx"
    bulk_count = 500 if args.quick else 20_000
    with running_server() as url:
        table, cpu_table, gc_table = measure(
            url, concurrency, repeat, warmup, window, args.only, more=args.more
        )
        bulk = (
            {}
            if args.no_bulk
            else measure_bulk(
                url, bulk_library, bulk_count, (64,) if args.quick else (64, 256), repeat
            )
        )
    print_throughput(table, concurrency)
    print_cpu(cpu_table, concurrency)
    print_gc(gc_table, concurrency)
    if bulk:
        print_bulk(bulk, bulk_library, bulk_count)

    libraries = [name for name in ("httpx", "httpx2") if _have(name)]
    cpu: dict[str, float] = {}
    for library in libraries:
        cpu.update(asyncio.run(_cpu_cases(library, cpu_sends)))
    print("\n## CPU per send, in-process, no-op transport (median of 5)\n")
    print("| way of sending | CPU us/send |")
    print("|---|---|")
    for label, micros in cpu.items():
        print(f"| {label} | {micros:.1f} |")

    profile: dict[str, dict[str, float]] = {}
    if not args.no_profile:
        for library in libraries:
            print(f"\n## Where a send's CPU goes: VortextClient/{library}")
            stats = asyncio.run(_profile(library, cpu_sends))
            profile[library] = print_profile(stats, cpu_sends)

    if args.json is None:
        args.json = (
            HERE / "results" / ("throughput-quick.json" if args.quick else "throughput.json")
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "quick": args.quick,
                "loop": "uvloop" if args.uvloop else "asyncio",
                "python": sys.version.split()[0],
                "repeat": repeat,
                "concurrency": list(concurrency),
                "throughput": {
                    label: {str(n): statistics.median(v) for n, v in row.items()}
                    for label, row in table.items()
                },
                "samples": {
                    label: {str(n): v for n, v in row.items()} for label, row in table.items()
                },
                "client_cpu_us_per_send": {
                    label: {str(n): v for n, v in row.items()} for label, row in cpu_table.items()
                },
                "client_gc_us_per_send": {
                    label: {str(n): v for n, v in row.items()} for label, row in gc_table.items()
                },
                "bulk_seconds": {str(n): dict(modes) for n, modes in bulk.items()},
                "bulk_count": bulk_count,
                "cpu_us_per_send": cpu,
                "profile_us_per_send": profile,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
