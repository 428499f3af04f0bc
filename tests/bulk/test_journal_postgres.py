"""The PostgreSQL journal: one campaign on many hosts, against a real PostgreSQL.

Each module run starts a throwaway PostgreSQL (tests/support/postgres_server.py) and each
test gets a database of its own.  Hosts are played by separate processes
(tests/support/journal_child.py) sending to the emulator served on loopback by this
test: the emulator's own store is the judge of what was sent, and how many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.postgres_server import (
    SKIP_REASON,
    PostgresServer,
    find_postgres_bin,
    running_postgres,
)
from vortext_async import JournalError, Outcome, RetryPolicy, SendResult, Sms, VortextClient
from vortext_async._bulk import (
    BulkJob,
    ClaimKind,
    fingerprint,
    journal_jobs,
    journal_status,
    send_bulk,
)

pytestmark = [
    pytest.mark.skipif(find_postgres_bin() is None, reason=SKIP_REASON),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and runuser"),
]

psycopg = pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")

from vortext_async._bulk._journal_postgres import PostgresJournal  # noqa: E402
from vortext_async.emulator import Emulator, serve_emulator  # noqa: E402
from vortext_async.testing import VirtualClock, emulator_client  # noqa: E402

CHILD = Path(__file__).parents[1] / "support" / "journal_child.py"
FP = fingerprint("+33611272727", "hello")
_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def _create_database(server: PostgresServer) -> str:
    name = f"t{next(_databases)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return _create_database(postgres)


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description is not None else []


@contextlib.asynccontextmanager
async def opened(url: str, **options: object) -> AsyncIterator[PostgresJournal]:
    journal = PostgresJournal(url, **options)  # type: ignore[arg-type]
    await journal.open()
    try:
        yield journal
    finally:
        await journal.aclose()


# -- the journal on its own -------------------------------------------------------------------


async def test_tables_are_created_on_first_use_and_said_so(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vortext_async"):
        async with opened(url):
            pass
        async with opened(url):
            pass
    created = [r for r in caplog.records if "created the tables" in r.getMessage()]
    assert len(created) == 1
    assert "vortext_shares (schema version 2)" in created[0].getMessage()
    assert query(url, "SELECT version FROM vortext_journal_schema") == [(2,)]


async def test_a_journal_of_schema_version_1_is_upgraded_in_place_and_said_so(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(url) as journal:
        assert (await journal.claim("k:kept", "f", "+33600000000")).kind is ClaimKind.SEND
    # What version 1 created: no shares.
    query(url, "DROP TABLE vortext_shares")
    query(url, "DELETE FROM vortext_journal_schema")
    query(url, "INSERT INTO vortext_journal_schema (version) VALUES (1)")
    with caplog.at_level(logging.INFO, logger="vortext_async"):
        async with opened(url) as journal:
            assert await journal.claim_share(0) is True
            assert (await journal.claim("k:kept", "f", "+33600000000")).kind is (
                ClaimKind.UNCERTAIN
            )
    upgraded = [r for r in caplog.records if "upgraded" in r.getMessage()]
    assert len(upgraded) == 1
    assert "from schema version 1 to 2" in upgraded[0].getMessage()
    assert query(url, "SELECT max(version) FROM vortext_journal_schema") == [(2,)]
    assert query(url, "SELECT share, run FROM vortext_shares") == [(0, 2)]


async def test_a_journal_of_another_schema_version_is_refused(url: str) -> None:
    async with opened(url):
        pass
    query(url, "UPDATE vortext_journal_schema SET version = 99")
    with pytest.raises(JournalError, match="schema version 99"):
        await PostgresJournal(url).open()


async def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    journal = PostgresJournal("postgresql://u:s3cret@127.0.0.1:1/db", connect_timeout=1)
    with pytest.raises(JournalError, match="cannot be reached") as caught:
        await journal.open()
    assert "s3cret" not in str(caught.value)
    assert caught.value.journal == "postgresql://u:***@127.0.0.1:1/db"


async def test_a_claim_is_committed_with_host_and_pid_before_it_returns(url: str) -> None:
    async with opened(url, job="spring") as journal:
        claim = await journal.claim("k:a", FP, "+33611272727")
        assert claim.kind is ClaimKind.SEND
        # Another connection sees it: committed.
        rows = query(
            url,
            "SELECT m.state, m.job, r.host, r.pid FROM vortext_messages m "
            "JOIN vortext_runs r ON r.run = m.run WHERE m.key = 'k:a'",
        )
        assert rows[0][:2] == ("attempting", "spring")
        import os
        import socket

        assert rows[0][2:] == (socket.gethostname(), os.getpid())
        await journal.settle("k:a", "sent", message_id="m-1")
        assert query(url, "SELECT state, message_id FROM vortext_messages") == [("sent", "m-1")]


async def test_a_message_a_live_host_holds_is_skipped_not_waited_on(url: str) -> None:
    async with opened(url) as first, opened(url) as second:
        assert (await first.claim("k:a", FP, "+336")).kind is ClaimKind.SEND
        # In flight on the first host: the second skips it at once.
        assert (await second.claim("k:a", FP, "+336")).kind is ClaimKind.ELSEWHERE
        await first.settle("k:a", "sent", message_id="m-1")
        # Settled by a host that is still running: still that host's to report.
        assert (await second.claim("k:a", FP, "+336")).kind is ClaimKind.ELSEWHERE
        assert (await first.claim("k:a", FP, "+336")).kind is ClaimKind.DUPLICATE
        await first.aclose()
        # The first host finished before the second: still not the second's to report.
        assert (await second.claim("k:a", FP, "+336")).kind is ClaimKind.ELSEWHERE
    async with opened(url) as rerun:  # both runs ended: a rerun reports it
        claim = await rerun.claim("k:a", FP, "+336")
        assert claim.kind is ClaimKind.SENT
        assert claim.message_id == "m-1"


async def test_a_message_another_host_is_claiming_right_now_is_not_waited_for(
    url: str,
) -> None:
    async with opened(url) as journal:
        other = await psycopg.AsyncConnection.connect(url)
        try:
            # Another host, mid-transaction: it has locked and inserted the key, and
            # not committed yet.
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('default' || chr(31) || 'k:a', 0))"
            )
            await other.execute(
                "INSERT INTO vortext_messages (job, key, state, run, fingerprint) "
                "VALUES ('default', 'k:a', 'attempting', 0, 'x')"
            )
            # The guard only stops a hang (a claim that waited for the other host).
            claim = await asyncio.wait_for(journal.claim("k:a", FP, "+336"), timeout=30)
            assert claim.kind is ClaimKind.ELSEWHERE
            assert (await journal.claim("k:b", FP, "+336")).kind is ClaimKind.SEND
        finally:
            await other.rollback()
            await other.close()


async def test_a_share_a_live_host_holds_is_not_another_hosts_until_that_host_ends(
    url: str,
) -> None:
    async with opened(url) as first, opened(url) as second:
        assert await first.claim_share(0) is True
        assert await second.claim_share(0) is False  # the first host's: put off
        assert await second.claim_share(1) is True
        assert await first.claim_share(1) is False
        assert await first.claim_share(0) is True  # its own, asked again
        await first.aclose()
        # Ended: what it left of share 0 is taken by the next host to reach it.
        assert await second.claim_share(0) is True
    assert query(url, "SELECT share, run FROM vortext_shares ORDER BY share") == [
        (0, second.run),
        (1, second.run),
    ]
    async with opened(url, job="other") as third:  # shares are per job
        assert await third.claim_share(0) is True


async def test_a_share_another_host_is_claiming_right_now_is_not_waited_for(url: str) -> None:
    async with opened(url) as journal:
        other = await psycopg.AsyncConnection.connect(url)
        try:
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('default' || chr(30) || '0', 0))"
            )
            await other.execute(
                "INSERT INTO vortext_shares (job, share, run) VALUES ('default', 0, 0)"
            )
            # The guard only stops a hang (a claim that waited for the other host).
            assert await asyncio.wait_for(journal.claim_share(0), timeout=30) is False
            assert await journal.claim_share(1) is True
        finally:
            await other.rollback()
            await other.close()


async def test_keys_are_unique_per_job(url: str) -> None:
    async with opened(url, job="a") as one, opened(url, job="b") as other:
        assert (await one.claim("k:x", FP, "+336")).kind is ClaimKind.SEND
        assert (await other.claim("k:x", FP, "+336")).kind is ClaimKind.SEND
    status = await journal_status(url, "a")
    assert status.counts["attempting"] == 1
    assert status.total == 1
    one = {"attempting": 1, "sent": 0, "failed": 0, "uncertain": 0}
    assert await journal_jobs(url) == {"a": one, "b": one}


async def test_a_dead_hosts_claims_stay_uncertain_and_say_whose_they_were(url: str) -> None:
    dead = PostgresJournal(url)
    await dead.open()
    await dead.claim("k:a", FP, "+336")
    # The host dies: its connection (and the run's lock) goes; the call returns once
    # the backend has exited (PostgreSQL 14+: wait up to 10 s), not just been signalled.
    query(
        url,
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
        "WHERE application_name = 'vortext-async bulk journal'",
    )
    status = await journal_status(url)
    (run,) = status.runs
    assert run.live is False
    assert run.attempting == 1
    assert run.pid is not None
    async with opened(url) as rerun:
        claim = await rerun.claim("k:a", FP, "+336")
        assert claim.kind is ClaimKind.UNCERTAIN
    async with opened(url, resend_uncertain=True) as at_least_once:
        assert (await at_least_once.claim("k:a", FP, "+336")).kind is ClaimKind.SEND
    with contextlib.suppress(JournalError):
        await dead.aclose()


@pytest.mark.parametrize(
    ("state", "retryable", "options", "expected"),
    [
        ("sent", False, {}, ClaimKind.SENT),
        ("failed", True, {}, ClaimKind.SEND),
        ("failed", True, {"retry_failed": False}, ClaimKind.FAILED),
        ("failed", False, {}, ClaimKind.FAILED),
        ("uncertain", False, {}, ClaimKind.UNCERTAIN),
        ("uncertain", False, {"resend_uncertain": True}, ClaimKind.SEND),
    ],
)
async def test_what_a_rerun_is_told_for_each_state(
    url: str, state: str, retryable: bool, options: dict[str, bool], expected: ClaimKind
) -> None:
    async with opened(url) as first:
        await first.claim("k:a", FP, "+336")
        await first.settle("k:a", state, message_id="m-1", reason="why", retryable=retryable)
    async with opened(url, **options) as second:
        assert (await second.claim("k:a", FP, "+336")).kind is expected


async def test_replace_changed_takes_only_a_failed_key(url: str) -> None:
    other = fingerprint("+33611272727", "fixed")
    async with opened(url) as first:
        await first.claim("k:f", FP, "+336")
        await first.settle("k:f", "failed", reason="bad")
        await first.claim("k:s", FP, "+336")
        await first.settle("k:s", "sent", message_id="m")
    async with opened(url, replace_changed=True) as second:
        assert (await second.claim("k:f", other, "+336")).kind is ClaimKind.SEND
        assert (await second.claim("k:s", other, "+336")).kind is ClaimKind.MISMATCH
    async with opened(url) as third:
        assert (await third.claim("k:s", other, "+336")).kind is ClaimKind.MISMATCH


async def test_a_lost_connection_fails_every_claim_at_once(url: str) -> None:
    async with opened(url) as journal:
        await journal.claim("k:a", FP, "+336")
        query(
            url,
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE application_name = 'vortext-async bulk journal'",
        )
        with pytest.raises(JournalError, match="connection was lost"):
            await journal.claim("k:b", FP, "+336")
        later = journal.claim("k:c", FP, "+336")
        assert later.done()  # refused without a round trip
        with pytest.raises(JournalError, match="claims no more messages"):
            await later


async def test_hosts_claiming_in_different_orders_never_deadlock_or_share_a_message(
    url: str,
) -> None:
    import random

    keys = [f"k:{n}" for n in range(3000)]
    journals = [PostgresJournal(url) for _ in range(3)]
    for journal in journals:
        await journal.open()

    async def host(journal: PostgresJournal, order: list[str]) -> list[str]:
        mine: list[str] = []

        async def one(key: str) -> None:
            claim = await journal.claim(key, FP, "+336")
            if claim.kind is ClaimKind.SEND:
                mine.append(key)
                await journal.settle(key, "sent", message_id=key)

        for start in range(0, len(order), 64):  # 64 claims in flight, like a job
            await asyncio.gather(*(one(key) for key in order[start : start + 64]))
        return mine

    orders = [keys, keys[::-1], random.Random(7).sample(keys, len(keys))]
    try:
        claimed = await asyncio.gather(*map(host, journals, orders))
    finally:
        for journal in journals:
            await journal.aclose()
    every = [key for mine in claimed for key in mine]
    assert sorted(every) == sorted(keys)  # each claimed by exactly one host
    assert all(claimed)


# -- send_bulk on a shared journal, in one process ------------------------------------------


@contextlib.asynccontextmanager
async def emulated(emulator: Emulator) -> AsyncIterator[VortextClient]:
    """A client of ``emulator`` (served on loopback) that does not retry."""
    async with (
        serve_emulator(emulator) as base_url,
        VortextClient("acme", "secret", base_url=base_url, retry=RetryPolicy.no_retries()) as c,
    ):
        yield c


async def collect(job: BulkJob) -> list[SendResult]:
    return [result async for result in job]


def campaign(count: int) -> Iterator[Sms]:
    for n in range(count):
        yield Sms(f"+336100{n:05d}", f"message {n}", key=f"m{n}")


async def test_two_jobs_on_one_campaign_send_each_message_once(url: str) -> None:
    emulator = Emulator(users={"acme": "secret"})
    async with emulated(emulator) as c:
        one = send_bulk(c, campaign(300), journal=url, concurrency=8)
        two = send_bulk(c, campaign(300), journal=url, concurrency=8)
        first, second = await asyncio.gather(collect(one), collect(two))
    assert emulator.duplicates() == {}
    assert len(emulator.messages()) == 300
    sent = {r.sms.key for r in first + second if r.outcome is Outcome.SENT}
    assert len(sent) == 300
    assert one.summary.total + two.summary.total == 300
    assert one.summary.skipped + two.summary.skipped == 300
    status = await journal_status(url)
    assert status.counts == {"attempting": 0, "sent": 300, "failed": 0, "uncertain": 0}


async def test_hosts_spread_over_the_campaign_by_shares(url: str) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.001)
    async with emulated(emulator) as c:
        jobs = [send_bulk(c, campaign(2000), journal=url, concurrency=8) for _ in range(2)]
        reports = await asyncio.gather(*(collect(job) for job in jobs))
    assert emulator.duplicates() == {}
    assert len(emulator.messages()) == 2000
    assert all(r.outcome is Outcome.SENT for report in reports for r in report)
    assert sum(len(report) for report in reports) == 2000  # each reported by one job
    assert sum(job.summary.skipped for job in jobs) == 2000  # and skipped by the other
    # Each share of 500 was taken by one job, and both jobs took some.
    owners = query(url, "SELECT share, run FROM vortext_shares ORDER BY share")
    assert [share for share, _ in owners] == [0, 1, 2, 3]
    assert len({run for _, run in owners}) == 2


async def test_a_share_whose_host_stops_early_is_finished_by_the_host_that_put_it_off(
    url: str,
) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.01)
    async with emulated(emulator) as c:
        first = send_bulk(c, campaign(1000), journal=url, concurrency=2)
        results = aiter(first)
        first_results = [await anext(results)]  # the first job holds share 0
        second = send_bulk(c, campaign(1000), journal=url, concurrency=2)
        second_task = asyncio.ensure_future(collect(second))
        # The second job put share 0 off (the first is live) and sends share 1.
        while second.summary.total == 0:
            await asyncio.sleep(0.005)
        await first.aclose()  # Ctrl-C on the first host, early in share 0
        first_results += [result async for result in results]
        second_results = await second_task
    assert first.summary.stopped
    assert not second.summary.stopped
    assert emulator.duplicates() == {}
    assert len(emulator.messages()) == 1000  # the rest of share 0 too
    sent_first = [r for r in first_results if r.outcome is Outcome.SENT]
    assert 0 < len(sent_first) < 500
    # Every message reported once: the first host's by it, the rest by the second.
    assert len(sent_first) + len(second_results) == 1000
    assert all(r.outcome is Outcome.SENT for r in second_results)
    assert second.summary.skipped == len(sent_first)


async def test_a_host_stopped_before_coming_back_to_a_share_reports_it_not_sent(
    url: str,
) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.01)
    async with emulated(emulator) as c:
        first = send_bulk(c, campaign(1000), journal=url, concurrency=2)
        first_task = asyncio.ensure_future(collect(first))
        while first.summary.total == 0:  # the first job holds share 0
            await asyncio.sleep(0.005)
        second = send_bulk(c, campaign(1000), journal=url, concurrency=2)
        second_task = asyncio.ensure_future(collect(second))
        while second.summary.total == 0:  # share 0 put off, share 1 being sent
            await asyncio.sleep(0.005)
        await second.aclose()
        second_results = await second_task
        await first.aclose()
        await first_task
    # Share 0 was put off, never claimed: not sent by the second host, which says so
    # (the first may have sent some meanwhile: a rerun reports each).
    share_0 = [r for r in second_results if r.sms.key and int(r.sms.key[1:]) < 500]
    assert len(share_0) == 500
    assert all(r.outcome is Outcome.FAILED for r in share_0)
    assert all("stopped before this message was sent" in str(r.error) for r in share_0)
    assert second.summary.skipped == 0
    # Every message it read has one result; nothing was sent twice.
    assert len(second_results) == len({r.sms.key for r in second_results})
    assert emulator.duplicates() == {}


async def test_an_input_error_still_sends_the_shares_put_off_then_raises(url: str) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.001)
    async with emulated(emulator) as c:
        holder_stopped = asyncio.Event()

        async def messages() -> AsyncIterator[Sms]:
            for n in range(700):
                if n == 520:
                    await holder_stopped.wait()
                yield Sms(f"+336100{n:05d}", f"message {n}", key=f"m{n}")
            raise OSError("the input file is truncated")

        async with opened(url) as holder:
            assert await holder.claim_share(0) is True  # a live host takes share 0 ...
            job = send_bulk(c, messages(), journal=url, concurrency=4)
            task = asyncio.ensure_future(collect(job))
            while job.progress.sent == 0:  # a message of share 1: share 0 is put off
                await asyncio.sleep(0.005)
        holder_stopped.set()  # ... and stops before claiming any of it
        with pytest.raises(OSError, match="truncated"):
            await task
    # The 700 messages read before the error went out: share 0 too.
    assert len(emulator.messages()) == 700
    assert job.summary.sent == 700
    assert job.summary.skipped == 0


async def test_after_an_input_error_the_shares_put_off_still_wait_for_the_rate_limit(
    url: str,
) -> None:
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[(20, 60.0)], count_delay=0.03, seed=5, clock=clock
    )

    async def messages() -> AsyncIterator[Sms]:
        for n in range(520):
            yield Sms(f"+336100{n:05d}", f"message {n}", key=f"m{n}")
        raise OSError("the input file is truncated")

    async with opened(url) as holder:
        assert await holder.claim_share(0) is True  # held, none of it claimed: put off
        async with emulator_client(emulator, clock=clock) as client:
            job = client.send_bulk(messages(), concurrency=64, journal=url)
            with pytest.raises(OSError, match="truncated"):
                await collect(job)
    # Refused for the account's 20 a minute, then sent: none given up after the error.
    assert job.summary.failed == 0
    assert job.summary.sent == 520
    assert emulator.duplicates() == {}


def reversed_campaign(count: int) -> Iterator[Sms]:
    for n in reversed(range(count)):
        yield Sms(f"+336100{n:05d}", f"message {n}", key=f"m{n}")


async def test_hosts_reading_keyed_messages_in_different_orders_send_each_once(
    url: str,
) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.002)
    async with emulated(emulator) as c:
        # A share is positions; the same positions hold other keys on each host.
        one = send_bulk(c, campaign(1000), journal=url, concurrency=4)
        two = send_bulk(c, reversed_campaign(1000), journal=url, concurrency=4)
        first, second = await asyncio.gather(collect(one), collect(two))
    assert emulator.duplicates() == {}
    assert len(emulator.messages()) == 1000
    assert len(first) + len(second) == 1000
    assert one.summary.skipped + two.summary.skipped == 1000


# -- hosts as processes -----------------------------------------------------------------------


class Host:
    """One ``journal_child.py`` process: its result lines and exit status."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, base_url: str, journal: str, count: int, concurrency: int) -> Host:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            base_url,
            journal,
            str(count),
            str(concurrency),
            "spring-campaign",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().strip())

    async def wait(self) -> tuple[int, str]:
        assert self.process.stderr is not None
        stderr = await self.process.stderr.read()
        code = await self.process.wait()
        await self.reader
        return code, stderr.decode()

    def summary(self) -> tuple[int, int, int, int]:
        (line,) = [line for line in self.lines if line.startswith("summary ")]
        sent, failed, uncertain, skipped = (int(x) for x in line.split()[1:])
        return sent, failed, uncertain, skipped

    def results(self) -> list[tuple[str, str]]:
        found = []
        for line in self.lines:
            outcome, _, key = line.partition(" ")
            if outcome in ("sent", "failed", "uncertain"):
                found.append((outcome, key))
        return found


async def wait_for_received(emulator: Emulator, count: int) -> None:
    while len(emulator.messages()) < count:
        await asyncio.sleep(0.01)


COUNT = 1200
CONCURRENCY = 8


async def test_three_hosts_send_every_message_once(url: str) -> None:
    emulator = Emulator(users={"acme": "secret"})
    async with serve_emulator(emulator) as base_url:
        hosts = [await Host.start(base_url, url, COUNT, CONCURRENCY) for _ in range(3)]
        codes = [await host.wait() for host in hosts]
    assert [code for code, _ in codes] == [0, 0, 0], codes
    assert emulator.duplicates() == {}
    assert len(emulator.messages()) == COUNT
    summaries = [host.summary() for host in hosts]
    # Every message reported by exactly one host, and skipped by the others.
    assert sum(s[0] for s in summaries) == COUNT
    assert all(s[1] == s[2] == 0 for s in summaries)
    assert sum(s[3] for s in summaries) == 2 * COUNT
    status = await journal_status(url, "spring-campaign")
    assert status.counts["sent"] == COUNT
    assert len(status.runs) == 3


async def test_a_killed_host_leaves_at_most_its_in_flight_messages_uncertain(url: str) -> None:
    emulator = Emulator(users={"acme": "secret"}, latency=0.002)
    async with serve_emulator(emulator) as base_url:
        hosts = [await Host.start(base_url, url, COUNT, CONCURRENCY) for _ in range(3)]
        await wait_for_received(emulator, COUNT // 3)
        hosts[0].process.send_signal(signal.SIGKILL)
        codes = [await host.wait() for host in hosts]
        assert codes[0][0] == -signal.SIGKILL
        assert [code for code, _ in codes[1:]] == [0, 0], codes
        received_before_rerun = len(emulator.messages())

        rerun = await Host.start(base_url, url, COUNT, CONCURRENCY)
        code, stderr = await rerun.wait()
    assert code == 0, stderr
    assert emulator.duplicates() == {}  # no key twice
    sent, failed, uncertain, skipped = rerun.summary()
    assert (sent + uncertain, failed, skipped) == (COUNT, 0, 0)  # the whole campaign
    assert uncertain <= CONCURRENCY  # at most the killed host's in-flight messages
    # Everything not received is reported UNCERTAIN (nothing lost silently).
    received = {m.message for m in emulator.messages()}
    uncertain_keys = {key for outcome, key in rerun.results() if outcome == "uncertain"}
    missing = {f"m{n}" for n in range(COUNT) if f"message {n}" not in received}
    assert missing <= uncertain_keys
    # The rerun sent what nobody had claimed.
    assert len(emulator.messages()) >= received_before_rerun


async def test_postgres_stopped_mid_run_stops_the_job_and_a_rerun_finishes() -> None:
    with running_postgres() as server:
        url = _create_database(server)
        emulator = Emulator(users={"acme": "secret"}, latency=0.002)
        async with serve_emulator(emulator) as base_url:
            host = await Host.start(base_url, url, COUNT, CONCURRENCY)
            await wait_for_received(emulator, COUNT // 4)
            await asyncio.to_thread(server.stop)
            at_stop = len(emulator.messages())
            code, stderr = await host.wait()
            after = len(emulator.messages())
            assert code == 3, stderr
            assert "connection was lost" in stderr
            assert "claims no more messages" in stderr
            # Stopped claiming at once: only sends already claimed went out.
            assert after - at_stop <= CONCURRENCY
            assert after < COUNT
            # Every message read has exactly one result.
            keys = [key for _, key in host.results()]
            assert len(keys) == len(set(keys))

            await asyncio.to_thread(server.start)
            rerun = await Host.start(base_url, url, COUNT, CONCURRENCY)
            code, stderr = await rerun.wait()
        assert code == 0, stderr
        assert emulator.duplicates() == {}
        sent, failed, uncertain, skipped = rerun.summary()
        assert (sent + uncertain, failed, skipped) == (COUNT, 0, 0)
        assert uncertain <= CONCURRENCY
        # Those the stopped host had in flight went out, but their results could not
        # be recorded: the rerun says UNCERTAIN for them, and does not resend them.
        assert sent <= len(emulator.messages()) <= sent + uncertain


async def test_messages_refused_for_the_rate_limit_are_resent_once_and_recorded_once(
    url: str,
) -> None:
    # A client without caps against 20 sends a minute: the first wave's refusals wait
    # for the learned pace and go again, their rows 'attempting' until sent.
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[(20, 60.0)], count_delay=0.03, seed=5, clock=clock
    )
    messages = [Sms(f"+336100{n:05d}", f"message {n}") for n in range(100)]
    async with emulator_client(emulator, clock=clock) as client:
        results = [r async for r in client.send_bulk(messages, concurrency=64, journal=url)]
    assert emulator.stats.refused > 0
    assert all(r.outcome is Outcome.SENT for r in results)
    assert len(results) == emulator.stats.accepted == 100
    assert emulator.duplicates() == {}
    assert query(url, "SELECT state, count(*) FROM vortext_messages GROUP BY state") == [
        ("sent", 100)
    ]


def _rows_touched(plan: dict[str, object]) -> int:
    """Rows every node of an EXPLAIN ANALYZE plan produced or threw away, all loops."""
    loops = int(plan.get("Actual Loops", 1))  # type: ignore[call-overload]
    rows = sum(
        int(plan.get(field, 0))  # type: ignore[call-overload]
        for field in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return rows * loops + sum(_rows_touched(child) for child in children)


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
def test_a_batch_reads_its_own_rows_only_however_large_the_job(url: str, plan_mode: str) -> None:
    # A journal holding an older job the statistics know, and a new job of 20,000
    # rows they do not (no ANALYZE since): the new job looks rare to the planner.
    from vortext_async._bulk import _journal_postgres as pg

    asyncio.run(_open_and_close(url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE vortext_messages SET (autovacuum_enabled = false)")
        insert = (
            "INSERT INTO vortext_messages (job, key, state, run, fingerprint) "
            "SELECT %s, 'k:m' || n, 'sent', 1, 'fp' FROM generate_series(1, %s) AS n"
        )
        conn.execute(insert, ("older", 2_000))
        conn.execute("ANALYZE vortext_messages")
        conn.execute(insert, ("new", 20_000))
        conn.execute(f"SET plan_cache_mode = {plan_mode}")
        keys = [f"k:m{n}" for n in range(100, 132)]
        batch = {
            "job": "new",
            "run": 1,
            "keys": keys,
            "fingerprints": ["fp"] * 32,
            "phones": ["+33611272727"] * 32,
            "states": ["sent"] * 32,
            "ids": ["id"] * 32,
            "reasons": [None] * 32,
            "retryables": [False] * 32,
        }
        statements = {
            "claim": pg._CLAIM,
            "lock": pg._LOCK_OLD,
            "take over": pg._TAKE_OVER,
            "adopt": pg._ADOPT,
            "settle": pg._SETTLE,
            "delete": pg._DELETE,
        }
        for name, sql in statements.items():
            with conn.transaction(force_rollback=True):
                for _ in range(6):  # prepared, then (force_generic_plan) its generic plan
                    cursor = conn.execute(
                        "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, batch, prepare=True
                    )
                    [(found,)] = cursor.fetchall()
                touched = _rows_touched(found[0]["Plan"])
                assert touched <= 10 * len(keys), (name, touched)


async def _open_and_close(url: str) -> None:
    async with opened(url):
        pass
