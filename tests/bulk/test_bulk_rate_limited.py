"""A bulk job without caps against a busy account: every message sent, none lost to a 429.

The account's caps are per minute or per hour; the client is given none, so its
learned limiter paces it after the first refusals.  A refused message (a 429 is
certainly not sent) goes back to wait for the limiter instead of failing, within the
job's ``rate_limit_patience``.  Everything runs in virtual time: the emulator and the
client share a ``VirtualClock``, and the emulator counts each send up to 30 ms late.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vortext_async import (
    InvalidRequestError,
    Outcome,
    RateLimitedError,
    SendResult,
    Sms,
    VortextClient,
    send_bulk,
)
from vortext_async.emulator import Emulator
from vortext_async.testing import VirtualClock, emulator_client

SENDS = 200
CONCURRENCY = 64
PER_MINUTE = (20, 60.0)
#: The best any client can do: 20 at once, then 20 more each minute.
IDEAL_PER_MINUTE = (SENDS / PER_MINUTE[0] - 1) * PER_MINUTE[1]  # 540 s


def sms(n: int) -> Sms:
    return Sms(f"+336100{n:05d}", f"message {n}")


class Run:
    """What a bulk job did against the emulator: results, refusals, virtual time."""

    def __init__(self) -> None:
        self.results: list[SendResult] = []
        self.first_wave_refused = 0
        self.elapsed = 0.0
        self.emulator: Emulator | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(result.outcome is outcome for result in self.results)


async def run_bulk(windows: list[tuple[int, float]], *, sends: int = SENDS, **options: Any) -> Run:
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=windows, count_delay=0.03, seed=5, clock=clock
    )
    run = Run()
    run.emulator = emulator

    async def first_wave() -> None:
        # Every send of the first wave is answered within 60 ms; the pause it earns
        # lasts at least a second.  What the server refused by then is the first wave.
        await clock.sleep(1.0)
        run.first_wave_refused = emulator.stats.refused

    async with emulator_client(emulator, clock=clock) as client:  # no rate_limit
        watcher = asyncio.create_task(first_wave())
        job = client.send_bulk((sms(n) for n in range(sends)), concurrency=CONCURRENCY, **options)
        run.results = [result async for result in job]
        run.elapsed = clock.time()
        await watcher
    return run


def refused_after_the_first_wave(run: Run) -> int:
    assert run.emulator is not None
    return run.emulator.stats.refused - run.first_wave_refused


async def test_a_per_minute_account_without_caps_gets_every_message_paced() -> None:
    run = await run_bulk([PER_MINUTE])

    assert run.emulator is not None
    assert len(run.results) == SENDS
    assert run.count(Outcome.SENT) == SENDS, [r.error for r in run.results if r.error][:3]
    assert run.emulator.stats.accepted == SENDS
    assert run.emulator.duplicates() == {}
    # The first wave is unpaced (nothing is known yet): 20 taken, the rest refused.
    assert run.first_wave_refused >= CONCURRENCY - PER_MINUTE[0]
    # From then on the learned pace (90% of 20 a minute) keeps under the cap; its
    # additive increase (2% of 20 a minute per quiet minute) reaches the cap after
    # five minutes, and an overshoot costs one refusal, then a 20% slower pace, which
    # takes more than the job's ten minutes to climb back: one refusal (two at most,
    # should the server's late counting catch a send at the edge of the window).
    assert refused_after_the_first_wave(run) <= 2
    assert run.elapsed <= 1.5 * IDEAL_PER_MINUTE


async def test_a_per_hour_account_without_caps_gets_every_message_sent() -> None:
    sends = 150
    run = await run_bulk([(100, 3600.0)], sends=sends)

    assert run.emulator is not None
    assert run.count(Outcome.SENT) == sends, [r.error for r in run.results if r.error][:3]
    assert run.emulator.stats.accepted == sends
    assert run.emulator.duplicates() == {}
    # The first wave's refusals carry Retry-After of about an hour: the limiter learns
    # 100 an hour and paces the 50 left at 90 an hour after the pause, refusing none.
    assert refused_after_the_first_wave(run) == 0
    # An hour's pause, then 50 at 90 an hour (2,000 s).
    assert run.elapsed <= 3600 + 50 * 3600 / 90 + 60


async def test_with_a_journal_each_message_is_sent_exactly_once_and_recorded_once(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "job.db"
    run = await run_bulk([PER_MINUTE], journal=journal)

    assert run.emulator is not None
    assert run.count(Outcome.SENT) == SENDS
    assert run.emulator.stats.accepted == SENDS
    assert run.emulator.duplicates() == {}
    with sqlite3.connect(journal) as conn:
        rows = dict(conn.execute("SELECT key, state FROM messages").fetchall())
        ids = {row[0] for row in conn.execute("SELECT message_id FROM messages")}
    assert rows == {f"p:{n}": "sent" for n in range(SENDS)}
    assert ids == {m.message_id for m in run.emulator.messages()}

    rerun = await run_bulk([PER_MINUTE], journal=journal)  # a fresh emulator: counts at 0
    assert rerun.emulator is not None
    assert all(r.outcome is Outcome.SENT and r.resumed for r in rerun.results)
    assert len(rerun.results) == SENDS
    assert rerun.emulator.stats.accepted == 0  # nothing was sent again


async def test_patience_zero_makes_a_refusal_final_as_before() -> None:
    run = await run_bulk([PER_MINUTE], rate_limit_patience=0)

    failed = [r for r in run.results if r.outcome is Outcome.FAILED]
    assert failed  # the first wave's refusals, out of the call's 60 s retry budget
    assert all(isinstance(r.error, RateLimitedError) for r in failed)
    assert run.count(Outcome.SENT) + len(failed) == SENDS


async def test_a_refusal_asking_longer_than_the_patience_is_final_at_once() -> None:
    # One send a day: the second gets Retry-After of about a day, beyond two hours.
    run = await run_bulk([(1, 86_400.0)], sends=5, rate_limit_patience=7200)

    assert run.count(Outcome.SENT) == 1
    assert run.count(Outcome.FAILED) == 4
    assert run.elapsed < 1.0  # not a day: waiting could not help


class Account:
    """A scripted account: refuses every send (429, ``Retry-After: 60``) while ``busy``."""

    def __init__(self, httplib: ModuleType, clock: VirtualClock) -> None:
        self.httplib = httplib
        self.clock = clock
        self.busy = True
        self.requests: list[float] = []
        self.accepted: list[str] = []

    def __call__(self, request: Any) -> Any:
        number = json.loads(request.content)["phoneNumber"]
        self.requests.append(self.clock.time())
        if self.busy:
            return self.httplib.Response(429, headers={"Retry-After": "60"}, json={"e": "busy"})
        self.accepted.append(number)
        return self.httplib.Response(200, json={"messageId": f"id-{number}"})


@pytest.mark.parametrize("with_journal", [False, True])
async def test_an_account_refusing_everything_ends_with_every_message_failed(
    httplib: ModuleType,
    mock_transport: Callable[[Any], Any],
    http_library: str,
    with_journal: bool,
    tmp_path: Path,
) -> None:
    clock = VirtualClock()
    account = Account(httplib, clock)
    journal = tmp_path / "job.db" if with_journal else None
    patience = 600.0
    async with VortextClient(
        "acme",
        "secret",
        base_url="https://api.test",
        transport=mock_transport(account),
        http_library=http_library,  # type: ignore[arg-type]
        clock=clock,
    ) as client:
        job = send_bulk(
            client,
            [sms(n) for n in range(50)],
            concurrency=16,
            rate_limit_patience=patience,
            journal=journal,
        )
        results = [result async for result in job]
        ended = clock.time()

        numbers = sorted(r.sms.phone_number for r in results)
        assert numbers == sorted(sms(n).phone_number for n in range(50))  # one result each
        assert all(r.outcome is Outcome.FAILED for r in results)
        assert job.summary.failed == 50
        # Refused for the whole patience, the job gives up on the account: the refusal
        # that shows it is that message's result; every message left fails unsent at
        # once (sending each would cost a minute's pause of the limiter, as asked).
        refused = [r for r in results if isinstance(r.error, RateLimitedError)]
        gave_up = [r for r in results if "rate_limit_patience" in str(r.error)]
        assert len(refused) + len(gave_up) == 50
        assert gave_up
        assert max(account.requests) >= patience - 60  # it did keep trying that long...
        # ...and not much longer: a send between two attempts of the client's retry
        # policy when the job gave up ends with its next attempt (660 s here, in
        # virtual time; the journal's thread may shift a claim past one pause).
        assert ended <= patience + 2 * 60
        # One request a minute while refused (each 429 pauses every send): not hammered.
        assert len(account.requests) <= patience / 60 + 16

        if journal is not None:  # the account takes sends again: a rerun sends each once
            account.busy = False
            again = send_bulk(client, [sms(n) for n in range(50)], journal=journal)
            rerun = [result async for result in again]
            assert all(r.outcome is Outcome.SENT and not r.resumed for r in rerun)
            assert sorted(account.accepted) == numbers


@pytest.mark.parametrize("patience", [-1.0, math.nan, True, "60"])
async def test_a_bad_patience_is_refused_with_its_name(patience: Any) -> None:
    clock = VirtualClock()
    async with emulator_client(Emulator(clock=clock), clock=clock) as client:
        with pytest.raises(InvalidRequestError, match="rate_limit_patience"):
            client.send_bulk([sms(0)], rate_limit_patience=patience)
        with pytest.raises(InvalidRequestError, match="rate_limit_patience"):
            send_bulk(client, [sms(0)], rate_limit_patience=patience)


async def test_a_single_send_still_fails_fast_within_its_retry_policy() -> None:
    # Not a bulk job: a send refused for a minute fails within the call's budget.
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[PER_MINUTE], count_delay=0.03, seed=5, clock=clock
    )
    async with emulator_client(emulator, clock=clock) as client:
        results = await asyncio.gather(
            *(client.send_sms(sms(n).phone_number, "hi") for n in range(30)),
            return_exceptions=True,
        )
        elapsed = clock.time()
    refused = [r for r in results if isinstance(r, RateLimitedError)]
    assert len(refused) == 30 - PER_MINUTE[0]
    assert elapsed <= client.retry.timeout


async def test_stopping_while_refused_messages_wait_fails_them_unsent_for_a_rerun(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "job.db"
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[PER_MINUTE], count_delay=0.03, seed=5, clock=clock
    )
    async with emulator_client(emulator, clock=clock) as client:
        job = client.send_bulk(
            (sms(n) for n in range(SENDS)), concurrency=CONCURRENCY, journal=journal
        )
        results: list[SendResult] = []

        async def consume() -> None:
            async for result in job:
                results.append(result)

        consumer = asyncio.create_task(consume())
        # Until every sender waits for its turn, refused ones among them (small steps
        # of virtual time: the journal commits on a thread, which the clock ignores).
        while client.limiter.state().queued < CONCURRENCY or not emulator.stats.refused:
            await clock.sleep(0.01)
        await job.aclose()
        await consumer
        first_run = emulator.stats.accepted

        # The refused messages waited for their turn again: nothing of them went out,
        # so they are FAILED (never uncertain) and a rerun sends them, once.
        assert not [r for r in results if r.outcome is Outcome.UNCERTAIN]
        assert not [r for r in results if isinstance(r.error, RateLimitedError)]
        assert sum(r.outcome is Outcome.SENT for r in results) == first_run
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        assert failed
        assert all("stopped before this message was sent" in str(r.error) for r in failed)
        with sqlite3.connect(journal) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state"))
        assert set(states) <= {"sent", "failed"}  # nothing left attempting or uncertain
        assert states["sent"] == first_run

        rerun = client.send_bulk((sms(n) for n in range(SENDS)), journal=journal)
        again = [result async for result in rerun]
    assert sum(r.resumed for r in again) == first_run
    assert all(r.outcome is Outcome.SENT for r in again)
    assert emulator.stats.accepted == SENDS
    assert emulator.duplicates() == {}
