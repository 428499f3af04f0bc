"""A bulk job SIGKILLed mid-flight, then run again: nothing lost, nothing sent twice.

A child process (tests/support/bulk_child.py) sends through a real VortextClient to
``CountingServer``, the fault server of tests/support run by this test, which logs
every ``POST /sms`` it receives.  The child is killed with SIGKILL, the job is run
again here with the same journal, and the server's own log is the judge: each
message received at most once, and every message either received and reported, or
reported UNCERTAIN (the journal said ``attempting``: perhaps sent, never resent).

Two kill points: with every send slot held by the server (the requests were read but
never answered), and in full flow right after a request arrives (journal commits
racing the kill).  The checks hold for any interleaving.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import Fault, FaultServer, Received
from vortext_async import Outcome, RetryPolicy, Sms, VortextClient, send_bulk

CHILD = Path(__file__).parents[1] / "support" / "bulk_child.py"
COUNT = 200
CONCURRENCY = 8

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def phone(n: int) -> str:
    return f"+336100{n:05d}"


def messages() -> Iterator[Sms]:
    for n in range(COUNT):
        yield Sms(phone(n), f"message {n}")


class CountingServer(FaultServer):
    """Answers ``POST /sms`` with ``{"messageId": "id-<phone>"}`` and logs each request.

    ``answer_limit``: after that many answers, requests are logged and then held
    (never answered); ``held`` is set once ``hold_target`` requests are held.
    ``on_received`` is set once ``log`` holds ``receive_target`` entries.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.answered = 0
        self.answer_limit: int | None = None
        self.hold_target = CONCURRENCY
        self.held_count = 0
        self.held = asyncio.Event()
        self.receive_target: int | None = None
        self.on_received = asyncio.Event()

    async def respond(self, received: Received) -> Fault:
        self.log.append(received.json()["phoneNumber"])
        if self.receive_target is not None and len(self.log) >= self.receive_target:
            self.on_received.set()
        if self.answer_limit is not None and self.answered >= self.answer_limit:
            self.held_count += 1
            if self.held_count >= self.hold_target:
                self.held.set()
            return Fault.hold()  # read, processed, never answered
        self.answered += 1
        return Fault.answer(200, json.dumps({"messageId": f"id-{self.log[-1]}"}))


@pytest.fixture
async def server() -> CountingServer:
    return CountingServer()


async def run_child_until(url: str, journal: Path, event: asyncio.Event) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        url,
        str(journal),
        str(COUNT),
        str(CONCURRENCY),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    waiter = asyncio.create_task(event.wait())
    exited = asyncio.create_task(child.wait())
    done, _ = await asyncio.wait({waiter, exited}, timeout=60, return_when="FIRST_COMPLETED")
    waiter.cancel()
    assert waiter in done, f"the child ended first: {await child.stderr.read()!r}"  # type: ignore[union-attr]
    child.send_signal(signal.SIGKILL)
    assert await exited == -signal.SIGKILL


@pytest.mark.parametrize("kill_when", ["all-slots-held", "in-full-flow"])
async def test_a_killed_job_reruns_without_losing_or_repeating_a_message(
    server: CountingServer, tmp_path: Path, kill_when: str
) -> None:
    journal = tmp_path / "campaign.db"
    await server.start()
    url = server.url
    try:
        if kill_when == "all-slots-held":
            server.answer_limit = 30
            await run_child_until(url, journal, server.held)
        else:
            server.receive_target = 50
            await run_child_until(url, journal, server.on_received)
        first_run = list(server.log)
        assert len(first_run) < COUNT  # killed mid-job
        server.answer_limit = None  # the rerun is answered normally

        async with VortextClient(
            "acme", "secret", base_url=url, retry=RetryPolicy.no_retries()
        ) as client:
            job = send_bulk(client, messages(), concurrency=CONCURRENCY, journal=journal)
            results = [result async for result in job]

            # Every message accounted for: one result each, none lost.
            assert sorted(r.sms.phone_number for r in results) == [phone(n) for n in range(COUNT)]
            # The server's own log: no message received twice.
            counts = collections.Counter(server.log)
            assert max(counts.values()) == 1
            outcome = {r.sms.phone_number: r for r in results}
            uncertain = {p for p, r in outcome.items() if r.outcome is Outcome.UNCERTAIN}
            assert all(r.outcome is not Outcome.FAILED for r in results)
            # SENT means the server has it, under the id it gave (journal or fresh answer).
            for number, result in outcome.items():
                if result.outcome is Outcome.SENT:
                    assert counts[number] == 1
                    assert result.message_id == f"id-{number}"
                    assert result.resumed == (number in first_run)
            # Uncertain ones were in flight when the process died (their request received,
            # or at least their attempt recorded), and are not resent.
            assert all(outcome[number].resumed for number in uncertain)
            assert len(uncertain - set(first_run)) <= CONCURRENCY
            if kill_when == "all-slots-held":
                assert set(first_run[30:]) <= uncertain <= set(first_run)
            # Neither received nor uncertain: sent by the rerun, once.
            fresh = {p for p in outcome if p not in first_run and p not in uncertain}
            assert fresh == set(server.log[len(first_run) :])
            assert job.summary.resumed == len(set(first_run) | uncertain)

            # Resending the uncertain ones is the caller's explicit choice.
            third = send_bulk(
                client, messages(), concurrency=CONCURRENCY, journal=journal, resend_uncertain=True
            )
            final = [result async for result in third]
            assert all(r.outcome is Outcome.SENT for r in final)
            assert set(server.log) == {phone(n) for n in range(COUNT)}
            repeated = {p for p, n in collections.Counter(server.log).items() if n > 1}
            assert repeated <= uncertain
    finally:
        await server.aclose()
