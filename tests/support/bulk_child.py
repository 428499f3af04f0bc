"""A bulk job in its own process, for test_bulk_crash.py to SIGKILL mid-flight.

    python tests/support/bulk_child.py BASE_URL JOURNAL COUNT CONCURRENCY

Sends COUNT messages (``+3361000nnnnn``, ``"message n"``, keyed by position) through a
real VortextClient to BASE_URL with the journal JOURNAL, and prints one line per result.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

from vortext_async import RetryPolicy, Sms, VortextClient, send_bulk


def messages(count: int) -> Iterator[Sms]:
    for n in range(count):
        yield Sms(f"+336100{n:05d}", f"message {n}")


async def main(base_url: str, journal: str, count: int, concurrency: int) -> None:
    async with VortextClient(
        "acme", "secret", base_url=base_url, retry=RetryPolicy.no_retries()
    ) as client:
        job = send_bulk(client, messages(count), concurrency=concurrency, journal=journal)
        async for result in job:
            print(result.outcome.value, result.sms.phone_number, flush=True)


if __name__ == "__main__":
    url, path, count, concurrency = sys.argv[1:5]
    asyncio.run(main(url, path, int(count), int(concurrency)))
