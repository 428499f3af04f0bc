"""One case, one concurrency, N sends: the client process's cost, for a repeatable count.

    python benchmarks/cost_per_send.py {raw,vortext,noshield} CONCURRENCY N

Runs N sends (after a warm-up) against the loopback server (``_server.py``, its own
process) and prints the CPU time of this process per send and the gen-0 collections
per 1,000 sends.  Wall-clock and CPU figures move with the machine's load; for a
figure that does not, count instructions with callgrind (the server is a child
process, not traced) at two sizes and divide the difference by the extra sends::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/cost_per_send.py vortext 64 256     # then 1280

``Collected`` (1280) minus ``Collected`` (256), over 1,024: instructions per send,
start-up and warm-up cancelled out.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_throughput as bt  # noqa: E402
from _server import running_server  # noqa: E402

from vortext_async import VortextClient  # noqa: E402


async def _no_shield(url: str, stack: AsyncExitStack) -> Callable[[], Awaitable[object]]:
    client = VortextClient("bench", "bench", base_url=url, shield_sends=False)
    stack.push_async_callback(client.aclose)

    async def send() -> object:
        return await client.send_sms("+33612345678", "Your code is 123456")

    return send


CASES = {"raw": bt.raw_aiohttp, "vortext": bt.vortext("auto"), "noshield": _no_shield}


def main() -> None:
    which, concurrency, sends = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    case = CASES[which]
    collections = [0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            collections[0] += 1

    gc.callbacks.append(count)

    async def run(url: str) -> None:
        async with AsyncExitStack() as stack:
            send = await case(url, stack)

            async def worker(k: int) -> None:
                for _ in range(k):
                    await send()

            await asyncio.gather(*(worker(max(1, 256 // concurrency)) for _ in range(concurrency)))
            per = sends // concurrency
            collections[0] = 0
            start = time.process_time()
            await asyncio.gather(*(worker(per) for _ in range(concurrency)))
            cpu = time.process_time() - start
            done = per * concurrency
            print(
                f"{which} c={concurrency} sends={done} cpu/send={cpu / done * 1e6:.1f} us "
                f"gen0/1000={collections[0] * 1000 / done:.1f}"
            )

    with running_server() as url:
        asyncio.run(run(url))


if __name__ == "__main__":
    main()
