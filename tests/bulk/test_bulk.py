"""Bulk sends: lazy input, bounded concurrency, one result per message, stopping, resuming.

Two servers: the emulator in-process (the real wire format) for the plain runs, and
``FakeApi``, a handler for the active library's MockTransport whose answers a test
scripts per phone number and can hold until an event (to catch a job mid-flight).
No real time passes: holds are released by events, retry waits run on a VirtualClock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vortext_async import (
    BadRequestError,
    BulkJob,
    BulkProgress,
    ClientClosedError,
    ConnectError,
    InvalidRequestError,
    Outcome,
    RateLimit,
    RetryPolicy,
    SendResult,
    Sms,
    UncertainSendError,
    VortextClient,
    send_bulk,
)
from vortext_async._bulk import Journal, fingerprint
from vortext_async.emulator import Emulator
from vortext_async.testing import VirtualClock, emulator_client


def phone(n: int) -> str:
    return f"+336100{n:05d}"


def sms(n: int, **options: Any) -> Sms:
    return Sms(phone(n), f"message {n}", **options)


class FakeApi:
    """A scripted Vortext: ``rules[phone]`` is a status, ``"connect"`` or ``"hold"``.

    ``hold`` answers 200 once ``release`` is set (``"hold 429"``: 429).  ``received``
    lists the phone number of every request in arrival order;
    ``in_flight``/``max_in_flight`` count requests being answered.
    """

    def __init__(self, httplib: ModuleType) -> None:
        self.httplib = httplib
        self.rules: dict[str, Any] = {}
        self.default: Any = 200
        self.release = asyncio.Event()
        self.received: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_request: Callable[[str], object] | None = None
        self.arrived = asyncio.Condition()

    async def __call__(self, request: Any) -> Any:
        number = json.loads(request.content)["phoneNumber"]
        self.received.append(number)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        async with self.arrived:
            self.arrived.notify_all()
        try:
            if self.on_request is not None:
                self.on_request(number)
            rule = self.rules.get(number, self.default)
            if rule in ("hold", "hold 429"):
                await self.release.wait()
                rule = 200 if rule == "hold" else 429
            if rule == "connect":
                raise self.httplib.ConnectError("connection refused")
            if rule != 200:
                return self.httplib.Response(rule, json={"error": f"status {rule}"})
            return self.httplib.Response(200, json={"messageId": f"id-{number}"})
        finally:
            self.in_flight -= 1

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self.arrived:
            await self.arrived.wait_for(predicate)


@pytest.fixture
def api(httplib: ModuleType) -> FakeApi:
    return FakeApi(httplib)


@pytest.fixture
async def client(
    api: FakeApi, mock_transport: Callable[[Any], Any], http_library: str
) -> AsyncIterator[VortextClient]:
    async with VortextClient(
        "acme",
        "secret",
        base_url="https://api.test",
        transport=mock_transport(api),
        http_library=http_library,  # type: ignore[arg-type]
        retry=RetryPolicy(attempts=2),
        clock=VirtualClock(),
    ) as c:
        yield c


class Counted:
    """A generator of ``count`` messages (None: endless) that records how far it was read."""

    def __init__(self, count: int | None = None, *, make: Callable[[int], Sms] = sms) -> None:
        self.count = count
        self.make = make
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[Sms]:
        try:
            n = 0
            while self.count is None or n < self.count:
                self.produced += 1
                yield self.make(n)
                n += 1
        finally:
            self.closed = True


async def collect(job: BulkJob, into: list[SendResult] | None = None) -> list[SendResult]:
    """Every result of ``job`` (also appended to ``into`` as they come, if given)."""
    results = into if into is not None else []
    async for result in job:
        results.append(result)
    return results


def journal_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, state, message_id FROM messages").fetchall()
    return {key: (state, message_id) for key, state, message_id in rows}


# -- one result per message ---------------------------------------------------------


async def test_every_message_gets_exactly_one_result_and_the_summary_adds_up() -> None:
    emulator = Emulator(users={"demo": "demo"}, seed=1)
    progress: list[BulkProgress] = []
    async with emulator_client(emulator) as client:
        job = client.send_bulk(Counted(300), concurrency=16, on_progress=progress.append)
        results = await collect(job)

    assert sorted(r.sms.phone_number for r in results) == [phone(n) for n in range(300)]
    assert all(r.outcome is Outcome.SENT and r.message_id for r in results)
    stored = {m.message_id: m.phone_number for m in emulator.messages()}
    assert {r.message_id: r.sms.phone_number for r in results} == stored
    assert emulator.duplicates() == {}
    summary = job.summary
    assert (summary.sent, summary.failed, summary.uncertain, summary.total) == (300, 0, 0, 300)
    assert summary.resumed == 0
    assert not summary.stopped
    assert summary.duration > 0
    assert summary.rate > 0
    assert [p.done for p in progress[:-1]] == list(range(1, 301))
    assert progress[-1].finished
    assert progress[-1].sent == 300
    assert progress[-1].in_flight == 0


async def test_results_come_out_as_each_send_finishes(client: VortextClient, api: FakeApi) -> None:
    api.rules[phone(0)] = "hold"
    order: list[str] = []
    async for result in send_bulk(client, [sms(0), sms(1), sms(2)], concurrency=3):
        order.append(result.sms.phone_number)
        if len(order) == 2:
            api.release.set()  # message 0 answers only after two others were yielded
    assert order == [phone(1), phone(2), phone(0)]


@pytest.mark.parametrize("kind", ["sync", "async", "sync+journal"])
async def test_input_is_read_lazily_never_far_ahead_of_the_results(
    client: VortextClient, kind: str, tmp_path: Path
) -> None:
    concurrency = 8
    source = Counted(None)  # endless: materialising it would never end
    consumed = 0
    lead: list[int] = []

    def make(n: int) -> Sms:
        lead.append(n - consumed)  # how far reading is ahead of the caller
        return sms(n)

    source.make = make

    async def endless() -> AsyncIterator[Sms]:
        for message in source:
            yield message

    messages: Any = endless() if kind == "async" else source
    journal = tmp_path / "job.db" if kind.endswith("journal") else None
    async with send_bulk(client, messages, concurrency=concurrency, journal=journal) as job:
        async for _ in job:
            consumed += 1
            if consumed == 500:
                break

    # At most `concurrency` in flight plus `concurrency` results waiting for the caller.
    assert max(lead) <= 2 * concurrency
    assert source.produced <= 500 + 2 * concurrency
    assert job.summary.total == source.produced  # every message read has its result
    assert source.closed


async def test_never_more_than_concurrency_sends_in_flight(
    client: VortextClient, api: FakeApi
) -> None:
    api.default = "hold"

    async def release_in_rounds() -> None:
        for round_ in range(1, 9):
            await api.wait_for(lambda: len(api.received) == 5 * round_)  # noqa: B023
            for _ in range(20):  # let any sixth send the job would start arrive
                await asyncio.sleep(0)
            assert api.in_flight == 5
            # The held five answer; the next five wait for the next round's event.
            held, api.release = api.release, asyncio.Event()
            held.set()

    releaser = asyncio.create_task(release_in_rounds())
    results = await collect(send_bulk(client, Counted(40), concurrency=5))
    await releaser
    assert len(results) == 40
    assert api.max_in_flight == 5


# -- failures stay with their message ----------------------------------------------------


async def test_a_failing_message_never_stops_the_job(client: VortextClient, api: FakeApi) -> None:
    api.rules = {phone(2): 400, phone(3): "connect", phone(4): 500}
    messages: list[Any] = [
        sms(0),
        Sms("06 11 27 27 27", "bad number"),
        sms(2),
        sms(3),
        sms(4),
        "not an Sms",
        sms(6),
    ]
    results = await collect(send_bulk(client, messages, concurrency=2))
    by_number = {getattr(r.sms, "phone_number", r.sms): r for r in results}

    assert len(results) == 7
    assert by_number[phone(0)].outcome is Outcome.SENT
    assert by_number[phone(6)].outcome is Outcome.SENT
    bad = by_number["06 11 27 27 27"]
    assert bad.outcome is Outcome.FAILED
    assert isinstance(bad.error, InvalidRequestError)
    assert bad.error.field == "phone_number"
    assert isinstance(by_number[phone(2)].error, BadRequestError)
    assert by_number[phone(2)].outcome is Outcome.FAILED
    refused = by_number[phone(3)]
    assert refused.outcome is Outcome.FAILED
    assert isinstance(refused.error, ConnectError)
    assert refused.error.attempts == 2
    maybe = by_number[phone(4)]
    assert maybe.outcome is Outcome.UNCERTAIN
    assert isinstance(maybe.error, UncertainSendError)
    not_sms = by_number["not an Sms"]
    assert not_sms.outcome is Outcome.FAILED
    assert isinstance(not_sms.error, InvalidRequestError)
    # The invalid number never went out; the refused one was tried twice (retry policy).
    assert sorted(api.received) == sorted(
        [phone(0), phone(2), phone(3), phone(3), phone(4), phone(6)]
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_input_that_raises_is_an_error_once_in_flight_sends_settled(
    client: VortextClient, api: FakeApi, kind: str
) -> None:
    api.default = "hold"
    broken = ValueError("row 6 is garbage")

    def rows() -> Iterator[Sms]:
        yield from (sms(n) for n in range(5))
        api.release.set()  # the sends answer only once the input has failed
        raise broken

    async def async_rows() -> AsyncIterator[Sms]:
        for message in rows():
            yield message

    messages: Any = rows() if kind == "sync" else async_rows()
    results: list[SendResult] = []
    with pytest.raises(ValueError, match="row 6 is garbage") as raised:
        await collect(send_bulk(client, messages, concurrency=10), results)

    assert raised.value is broken
    assert "after 5 messages" in "".join(raised.value.__notes__)
    assert sorted(r.sms.phone_number for r in results) == [phone(n) for n in range(5)]
    assert all(r.outcome is Outcome.SENT for r in results)


# -- stopping ------------------------------------------------------------------------------


async def test_break_stops_reading_and_lets_sends_in_flight_finish(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    api.default = "hold"
    api.rules[phone(0)] = 200
    source = Counted(1000)

    def messages() -> Iterator[Sms]:
        try:
            yield from source
        finally:
            api.release.set()  # held sends answer once the job has closed its input

    journal = tmp_path / "job.db"
    async with send_bulk(client, messages(), concurrency=4, journal=journal) as job:
        async for result in job:
            assert result.sms == sms(0)
            break

    summary = job.summary
    assert source.closed
    assert source.produced <= 5
    assert summary.stopped
    assert summary.total == source.produced
    # The sends in flight finished within the grace period; a message read as the loop
    # broke was not sent at all (FAILED, and gone from the journal so a rerun sends it).
    assert summary.sent == len(api.received) >= 4
    assert summary.failed == source.produced - summary.sent
    assert sorted(api.received) == [phone(n) for n in range(summary.sent)]
    assert journal_rows(journal) == {
        f"p:{n}": ("sent", f"id-{phone(n)}") for n in range(summary.sent)
    }


async def test_sends_past_the_grace_period_are_uncertain_and_counted_once(
    api: FakeApi, mock_transport: Callable[[Any], Any], http_library: str, tmp_path: Path
) -> None:
    api.default = "hold"
    api.rules[phone(0)] = 200
    background: list[SendResult] = []
    journal = tmp_path / "job.db"
    client = VortextClient(
        "acme",
        "secret",
        base_url="https://api.test",
        transport=mock_transport(api),
        http_library=http_library,  # type: ignore[arg-type]
        on_background_result=background.append,
    )
    async with client:
        async with send_bulk(client, Counted(100), concurrency=3, journal=journal, grace=0) as job:
            async for _ in job:
                await api.wait_for(lambda: api.in_flight == 3)
                break
        summary = job.summary
        assert (summary.sent, summary.uncertain, summary.total) == (1, 3, 4)
        rows = journal_rows(journal)
        assert sorted(state for state, _ in rows.values()) == ["sent", *["uncertain"] * 3]
        api.release.set()  # the cut requests finish in the client's background

    # The client reported them to its hook; the job did not count them a second time.
    assert sorted(r.sms.phone_number for r in background) == [phone(1), phone(2), phone(3)]
    assert job.summary == summary
    assert len(api.received) == 4


async def test_cancelling_the_task_stops_the_job_after_its_grace(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    api.default = "hold"
    source = Counted(1000)
    journal = tmp_path / "job.db"

    def messages() -> Iterator[Sms]:
        try:
            yield from source
        finally:
            api.release.set()

    job = send_bulk(client, messages(), concurrency=4, journal=journal)

    async def consume() -> None:
        async for _ in job:
            pass

    task = asyncio.create_task(consume())
    await api.wait_for(lambda: api.in_flight == 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    summary = job.summary
    assert source.closed
    assert source.produced == 4
    assert (summary.sent, summary.total) == (4, 4)
    assert summary.stopped
    assert {state for state, _ in journal_rows(journal).values()} == {"sent"}


async def test_aclose_from_another_task_hands_the_last_results_to_the_consumer(
    client: VortextClient, api: FakeApi
) -> None:
    api.default = "hold"
    job = send_bulk(client, Counted(1000), concurrency=4)
    got: list[SendResult] = []

    async def consume() -> None:
        async for result in job:
            got.append(result)

    task = asyncio.create_task(consume())
    await api.wait_for(lambda: api.in_flight == 4)
    closing = asyncio.create_task(job.aclose())
    await asyncio.sleep(0)
    api.release.set()
    await closing
    await task  # the iteration ended normally, after the four in-flight results

    assert sorted(r.sms.phone_number for r in got) == [phone(n) for n in range(4)]
    assert all(r.outcome is Outcome.SENT for r in got)
    assert job.summary.stopped
    assert job.summary.total == 4


async def test_a_message_read_but_not_yet_sent_when_stopping_is_failed_and_unclaimed(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    holder: list[BulkJob] = []
    closing: list[asyncio.Task[None]] = []

    def make(n: int) -> Sms:
        if n == 3:  # stop while message 3 is being recorded as attempting
            closing.append(asyncio.get_running_loop().create_task(holder[0].aclose()))
        return sms(n)

    job = send_bulk(client, Counted(10, make=make), concurrency=1, journal=journal)
    holder.append(job)
    results = await collect(job)
    await closing[0]

    by_number = {r.sms.phone_number: r for r in results}
    assert [by_number[phone(n)].outcome for n in range(4)] == [Outcome.SENT] * 3 + [Outcome.FAILED]
    assert "stopped before this message was sent" in str(by_number[phone(3)].error)
    assert phone(3) not in api.received
    assert "p:3" not in journal_rows(journal)  # never attempted: a rerun sends it

    rerun = await collect(send_bulk(client, Counted(10), concurrency=1, journal=journal))
    assert sum(r.resumed for r in rerun) == 3
    assert sorted(api.received) == [phone(n) for n in range(10)]


async def test_messages_waiting_for_their_turn_when_stopping_are_failed_and_resent_on_rerun(
    api: FakeApi, mock_transport: Callable[[Any], Any], http_library: str, tmp_path: Path
) -> None:
    # One send an hour: the first message goes out, the next three wait for a token.
    journal = tmp_path / "job.db"
    options: dict[str, Any] = {
        "base_url": "https://api.test",
        "transport": mock_transport(api),
        "http_library": http_library,
    }
    async with VortextClient(
        "acme", "secret", rate_limit=RateLimit(windows=[(1, 3600.0)]), **options
    ) as paced:
        job = send_bulk(paced, Counted(4), concurrency=4, journal=journal, grace=3600)
        results: list[SendResult] = []
        consumer = asyncio.create_task(collect(job, into=results))
        while paced.limiter.state().queued < 3:  # let the three queue on the limiter
            await asyncio.sleep(0)
        await job.aclose()  # at once: the grace is for sends in flight; these never left
        await consumer
        assert job.summary.failed == 3

    by_number = {r.sms.phone_number: r for r in results}
    assert [by_number[phone(n)].outcome for n in range(4)] == [Outcome.SENT] + [Outcome.FAILED] * 3
    for n in range(1, 4):
        assert "stopped before this message was sent" in str(by_number[phone(n)].error)
    assert api.received == [phone(0)]
    assert set(journal_rows(journal)) == {"p:0"}  # the others were never attempted

    async with VortextClient("acme", "secret", **options) as unpaced:
        rerun = await collect(send_bulk(unpaced, Counted(4), concurrency=4, journal=journal))
    assert sorted((r.sms.phone_number, r.resumed) for r in rerun) == [
        (phone(0), True),
        *((phone(n), False) for n in range(1, 4)),
    ]
    assert sorted(api.received) == [phone(n) for n in range(4)]  # each exactly once


@pytest.mark.parametrize("attempts", [2, 1], ids=["client-retries", "job-sends-again"])
async def test_messages_refused_and_waiting_to_be_sent_again_when_stopping_are_failed(
    tmp_path: Path, attempts: int
) -> None:
    # The account takes 5 sends a second, the client is told 10 a minute: the 6th send
    # is refused (429, certainly not sent) and waits to be tried again, by the client
    # (attempts=2) or by the job (attempts=1); the others wait for the limiter's pause.
    clock = VirtualClock()
    emulator = Emulator(users={"demo": "demo"}, windows=[(5, 1.0)], clock=clock)
    journal = tmp_path / "job.db"
    options: dict[str, Any] = {"clock": clock, "retry": RetryPolicy(attempts=attempts)}
    async with emulator_client(emulator, rate_limit=RateLimit(per_minute=10), **options) as client:
        job = send_bulk(client, Counted(20), journal=journal, grace=3600)
        results: list[SendResult] = []
        consumer = asyncio.create_task(collect(job, into=results))
        # Turns of the loop, so virtual time stands still while the journal commits.
        # The refused one queues again when the job sends it again (attempts=1).
        queued = 14 if attempts == 2 else 15
        while emulator.stats.requests < 6 or client.limiter.state().queued < queued:
            await asyncio.sleep(0)
        assert (emulator.stats.accepted, emulator.stats.refused) == (5, 1)
        await job.aclose()  # at once, whatever the grace: nothing of the 15 is out
        await consumer
        assert emulator.stats.requests == 6  # nothing went out after the stop

    assert job.summary.sent == 5
    assert job.summary.failed == 15
    assert job.summary.uncertain == 0
    for result in results:
        if result.outcome is Outcome.FAILED:
            assert "stopped before this message was sent" in str(result.error)
    sent = {f"p:{int(r.sms.phone_number[-5:])}" for r in results if r.outcome is Outcome.SENT}
    assert {key: state for key, (state, _) in journal_rows(journal).items()} == dict.fromkeys(
        sent, "sent"
    )  # the 15 others, refused one included, are left for a rerun

    unpaced = Emulator(users={"demo": "demo"})
    async with emulator_client(unpaced) as client:
        rerun = await collect(send_bulk(client, Counted(20), journal=journal))
    assert sum(r.resumed for r in rerun) == 5
    assert all(r.outcome is Outcome.SENT for r in rerun)
    assert unpaced.stats.accepted == 15
    assert unpaced.duplicates() == {}


async def test_a_send_refused_while_stopping_ends_at_once_without_a_retry(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    # In flight when the job stops; refused (429) during the grace: certainly not sent,
    # so it is FAILED and unclaimed at once, not tried again nor waited for.
    journal = tmp_path / "job.db"
    api.rules[phone(0)] = "hold 429"
    job = send_bulk(client, Counted(1), concurrency=1, journal=journal, grace=3600)
    results: list[SendResult] = []
    consumer = asyncio.create_task(collect(job, into=results))
    await api.wait_for(lambda: api.in_flight == 1)
    closing = asyncio.create_task(job.aclose())
    await asyncio.sleep(0)  # the stop has started: the send is in its grace period
    api.release.set()
    await closing
    await consumer

    (result,) = results
    assert result.outcome is Outcome.FAILED
    assert "stopped before this message was sent" in str(result.error)
    assert api.received == [phone(0)]  # the client's second attempt never went out
    assert journal_rows(journal) == {}


async def test_a_closed_client_ends_the_job_instead_of_failing_every_message(
    client: VortextClient, api: FakeApi
) -> None:
    await client.aclose()
    results: list[SendResult] = []
    with pytest.raises(ClientClosedError, match="closed"):
        await collect(send_bulk(client, Counted(10_000), concurrency=2), results)
    assert 1 <= len(results) <= 3
    assert all(r.outcome is Outcome.FAILED for r in results)
    assert api.received == []


def test_bad_options_are_refused_before_anything_starts(client: VortextClient) -> None:
    with pytest.raises(InvalidRequestError, match="concurrency"):
        send_bulk(client, [], concurrency=0)
    with pytest.raises(InvalidRequestError, match="grace"):
        send_bulk(client, [], grace=-1)
    with pytest.raises(InvalidRequestError, match="messages"):
        send_bulk(client, 42)  # type: ignore[arg-type]


# -- the journal: resume without resending ------------------------------------------------


async def test_attempting_is_committed_before_the_request_goes_out(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    seen: dict[str, str] = {}

    def check(number: str) -> None:
        key = f"k:{number}"
        with sqlite3.connect(journal) as conn:  # another connection: only committed rows
            (state,) = conn.execute("SELECT state FROM messages WHERE key = ?", (key,)).fetchone()
        seen[number] = state

    api.on_request = check
    messages = [sms(n, key=phone(n)) for n in range(20)]
    results = await collect(send_bulk(client, messages, concurrency=5, journal=journal))

    assert seen == {phone(n): "attempting" for n in range(20)}
    assert journal_rows(journal) == {
        f"k:{r.sms.phone_number}": ("sent", r.message_id) for r in results
    }


async def test_a_rerun_reports_what_is_done_and_sends_only_what_may_be_sent(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    # 0, 1 sent; 2 refused for its content; 3 unreachable server (passing); 4 perhaps sent.
    api.rules = {phone(2): 400, phone(3): "connect", phone(4): 500}
    first = await collect(send_bulk(client, Counted(5), journal=journal))
    assert sorted(r.outcome.value for r in first) == [
        "failed",
        "failed",
        "sent",
        "sent",
        "uncertain",
    ]
    assert journal_rows(journal)["p:4"][0] == "uncertain"

    api.rules, api.received = {}, []
    job = send_bulk(client, Counted(5), journal=journal)
    second = {r.sms.phone_number: r for r in await collect(job)}
    assert api.received == [phone(3)]  # nothing else was sent again
    assert [second[phone(n)].outcome for n in range(5)] == [
        Outcome.SENT,
        Outcome.SENT,
        Outcome.FAILED,
        Outcome.SENT,
        Outcome.UNCERTAIN,
    ]
    assert [second[phone(n)].resumed for n in range(5)] == [True, True, True, False, True]
    first_ids = {r.sms.phone_number: r.message_id for r in first}
    assert second[phone(0)].message_id == first_ids[phone(0)] == f"id-{phone(0)}"
    assert "400" in str(second[phone(2)].error)
    assert isinstance(second[phone(4)].error, UncertainSendError)
    assert (job.summary.resumed, job.summary.sent, job.summary.total) == (4, 3, 5)

    api.received = []
    third = await collect(send_bulk(client, Counted(5), journal=journal, resend_uncertain=True))
    assert api.received == [phone(4)]
    assert sum(r.outcome is Outcome.SENT for r in third) == 4


async def test_retry_failed_false_keeps_passing_failures_as_failed(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    api.rules = {phone(0): "connect"}
    await collect(send_bulk(client, Counted(1), journal=journal))
    api.rules, api.received = {}, []
    (result,) = await collect(send_bulk(client, Counted(1), journal=journal, retry_failed=False))
    assert result.outcome is Outcome.FAILED
    assert result.resumed
    assert api.received == []


async def test_a_message_left_attempting_by_a_dead_process_is_uncertain_not_resent(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    path = tmp_path / "job.db"
    dead = Journal(path)  # what a process killed mid-request leaves behind
    await dead.open()
    await dead.claim("k:a", fingerprint(phone(1), "message 1"), phone(1))
    await dead.aclose()

    (result,) = await collect(send_bulk(client, [sms(1, key="a")], journal=path))
    assert result.outcome is Outcome.UNCERTAIN
    assert result.resumed
    assert "stopped while this message was being sent" in str(result.error)
    assert api.received == []

    (again,) = await collect(
        send_bulk(client, [sms(1, key="a")], journal=path, resend_uncertain=True)
    )
    assert again.outcome is Outcome.SENT
    assert not again.resumed
    assert api.received == [phone(1)]


async def test_a_reordered_input_is_caught_instead_of_skipping_the_wrong_messages(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    await collect(send_bulk(client, [sms(0), sms(1)], journal=journal))
    api.received = []
    results = await collect(send_bulk(client, [sms(1), sms(0)], journal=journal))
    assert all(r.outcome is Outcome.FAILED for r in results)
    assert all(isinstance(r.error, InvalidRequestError) for r in results)
    assert "reordered" in str(results[0].error)
    assert api.received == []


async def test_two_messages_with_one_key_are_not_both_sent(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    messages = [sms(0, key="same"), sms(1, key="same")]
    results = await collect(send_bulk(client, messages, concurrency=1, journal=tmp_path / "j.db"))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED]
    assert isinstance(results[1].error, InvalidRequestError)
    assert results[1].error.field == "key"
    assert api.received == [phone(0)]


async def test_job_progress_is_where_the_job_stands_for_polling() -> None:
    emulator = Emulator(users={"demo": "demo"}, seed=1)
    async with emulator_client(emulator) as client:
        job = client.send_bulk(Counted(10), concurrency=2)
        assert job.progress.done == 0
        seen = []
        async for _ in job:
            seen.append(job.progress.done)
        final = job.progress
    assert seen == sorted(seen)  # counted as they finish, perhaps before they are yielded
    assert all(done >= n for n, done in enumerate(seen, start=1))
    assert (final.done, final.sent, final.in_flight, final.finished) == (10, 10, 0, True)


async def test_a_rerun_says_once_that_an_uncertain_message_may_have_been_sent(
    client: VortextClient, api: FakeApi, tmp_path: Path
) -> None:
    journal = tmp_path / "job.db"
    api.rules[phone(0)] = 500  # may have been accepted: uncertain
    (first,) = await collect(send_bulk(client, Counted(1), journal=journal))
    (again,) = await collect(send_bulk(client, Counted(1), journal=journal))

    assert first.outcome is again.outcome is Outcome.UNCERTAIN
    assert again.resumed
    assert str(again.error) == str(first.error)  # not "may or may not...: may or may not..."
    assert str(again.error).count("may or may not have been sent") == 1
