"""One host of a bulk campaign, for tests/bulk/test_journal_postgres.py to run (or kill).

    python tests/support/journal_child.py BASE_URL JOURNAL COUNT CONCURRENCY JOB

Sends COUNT messages (``+3361000nnnnn``, ``"message n"``, keyed ``m<n>``) through a
real VortextClient to BASE_URL with the journal JOURNAL (a path or a postgresql://
URL) under the job name JOB.  Prints one line per result (``<outcome> <key>``), then
``summary <sent> <failed> <uncertain> <skipped>``.  A journal failure ends it with the
error on stderr and exit status 3.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

from vortext_async import JournalError, RetryPolicy, Sms, VortextClient, send_bulk


def messages(count: int) -> Iterator[Sms]:
    for n in range(count):
        yield Sms(f"+336100{n:05d}", f"message {n}", key=f"m{n}")


async def main(base_url: str, journal: str, count: int, concurrency: int, job: str) -> int:
    async with VortextClient(
        "acme", "secret", base_url=base_url, retry=RetryPolicy.no_retries()
    ) as client:
        bulk = send_bulk(client, messages(count), concurrency=concurrency, journal=journal, job=job)
        try:
            async for result in bulk:
                print(result.outcome.value, result.sms.key, flush=True)
        except JournalError as error:
            print(f"journal error: {error}", file=sys.stderr, flush=True)
            return 3
        s = bulk.summary
        print("summary", s.sent, s.failed, s.uncertain, s.skipped, flush=True)
    return 0


if __name__ == "__main__":
    url, path, count, concurrency, job = sys.argv[1:6]
    sys.exit(asyncio.run(main(url, path, int(count), int(concurrency), job)))
