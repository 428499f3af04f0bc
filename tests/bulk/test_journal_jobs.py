"""The SQLite journal: one job at a time per file, many jobs per file, corrected rows.

Sends go to the emulator in-process (the real wire format); the journal file is
read through separate connections, as another process would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from vortext_async import (
    JournalBusyError,
    JournalError,
    Outcome,
    RetryPolicy,
    SendResult,
    Sms,
    VortextClient,
)
from vortext_async._bulk import (
    BulkJob,
    ClaimKind,
    Journal,
    fingerprint,
    journal_jobs,
    journal_status,
    send_bulk,
)
from vortext_async.emulator import Emulator
from vortext_async.testing import emulator_client


def phone(n: int) -> str:
    return f"+336100{n:05d}"


def sms(n: int, **options: object) -> Sms:
    return Sms(phone(n), f"message {n}", **options)  # type: ignore[arg-type]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[VortextClient]:
    async with emulator_client(emulator, retry=RetryPolicy.no_retries()) as c:
        yield c


async def collect(job: BulkJob) -> list[SendResult]:
    return [result async for result in job]


def rows(path: Path, job: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(
            conn.execute("SELECT key, state FROM messages WHERE job = ? ORDER BY key", (job,))
        )


# -- one job at a time per file ------------------------------------------------------------


async def test_a_second_job_on_a_busy_journal_fails_at_once_and_sends_nothing(
    client: VortextClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "job.db"
    first = Journal(path)
    await first.open()  # a job running on the file
    read: list[int] = []

    def messages() -> Iterator[Sms]:
        for n in range(5):
            read.append(n)
            yield sms(n)

    try:
        with pytest.raises(JournalBusyError) as caught:
            await collect(send_bulk(client, messages(), journal=path))
    finally:
        await first.aclose()
    assert str(path) in str(caught.value)
    assert caught.value.journal == str(path)
    assert caught.value.holder is not None
    assert "pid" in caught.value.holder
    assert emulator.messages() == []
    assert read == []  # not even read
    # Once the first job ends, the file is free again.
    results = await collect(send_bulk(client, messages(), journal=path))
    assert [r.outcome for r in results] == [Outcome.SENT] * 5


async def test_the_lock_goes_when_the_job_ends_even_if_its_open_failed(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    broken = Journal(path)
    with pytest.raises(JournalError, match="schema version 99"):
        await broken.open()
    await broken.aclose()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")
    again = Journal(path)
    await again.open()  # not busy
    await again.aclose()


# -- many jobs per file ----------------------------------------------------------------------


async def test_keys_are_unique_per_job_and_a_rerun_sees_only_its_own_job(
    client: VortextClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.db"
    monday = await collect(send_bulk(client, [sms(0, key="a")], journal=path, job="monday"))
    tuesday = await collect(send_bulk(client, [sms(1, key="a")], journal=path, job="tuesday"))
    assert [r.outcome for r in monday + tuesday] == [Outcome.SENT, Outcome.SENT]
    assert not tuesday[0].resumed
    assert len(emulator.messages()) == 2

    (rerun,) = await collect(send_bulk(client, [sms(0, key="a")], journal=path, job="monday"))
    assert rerun.outcome is Outcome.SENT
    assert rerun.resumed
    assert len(emulator.messages()) == 2
    assert rows(path, "monday") == {"k:a": "sent"}
    assert rows(path, "tuesday") == {"k:a": "sent"}

    status = await journal_status(path, "tuesday")
    assert status.counts == {"attempting": 0, "sent": 1, "failed": 0, "uncertain": 0}
    assert [run.pid for run in status.runs] == [run.pid for run in status.runs if run.pid]
    assert len(status.runs) == 1
    sent_one = {"attempting": 0, "sent": 1, "failed": 0, "uncertain": 0}
    assert await journal_jobs(path) == {"monday": sent_one, "tuesday": sent_one}


async def test_a_journal_of_schema_version_1_keeps_its_rows_as_the_default_job(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE runs (run INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL);"
            "CREATE TABLE messages (key TEXT PRIMARY KEY, state TEXT NOT NULL, run INTEGER "
            "NOT NULL, fingerprint TEXT NOT NULL, phone_number TEXT, message_id TEXT, "
            "reason TEXT, retryable INTEGER) WITHOUT ROWID;"
            "INSERT INTO runs (started_at) VALUES (0);"
            "INSERT INTO messages VALUES ('k:a', 'sent', 1, "
            f"'{fingerprint(phone(0), 'message 0')}', '+33', 'm-1', NULL, 0);"
            "PRAGMA user_version = 1;"
        )
    journal = Journal(path)
    await journal.open()
    try:
        claim = await journal.claim("k:a", fingerprint(phone(0), "message 0"), phone(0))
    finally:
        await journal.aclose()
    assert claim.kind is ClaimKind.SENT
    assert claim.message_id == "m-1"


# -- a corrected row can be resent ------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "replaced"),
    [("failed", True), ("sent", False), ("uncertain", False), ("attempting", False)],
)
async def test_a_changed_message_takes_only_the_key_of_a_failed_one(
    tmp_path: Path, state: str, replaced: bool
) -> None:
    path = tmp_path / "job.db"
    before, after = fingerprint(phone(0), "hello"), fingerprint(phone(0), "hello, fixed")
    first = Journal(path)
    await first.open()
    await first.claim("k:a", before, phone(0))
    if state != "attempting":
        await first.settle("k:a", state, message_id="m-1", reason="bad", retryable=False)
    await first.aclose()

    plain = Journal(path)
    await plain.open()
    assert (await plain.claim("k:a", after, phone(0))).kind is ClaimKind.MISMATCH
    await plain.aclose()

    replacing = Journal(path, replace_changed=True)
    await replacing.open()
    claim = await replacing.claim("k:a", after, phone(0))
    await replacing.aclose()
    assert (claim.kind is ClaimKind.SEND) is replaced
    if not replaced:
        assert claim.kind is ClaimKind.MISMATCH
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT state, fingerprint FROM messages").fetchone()
    assert stored == (("attempting", after) if replaced else (state, before))


async def test_a_refused_changed_message_says_what_to_do(
    client: VortextClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "job.db"
    wrong = Sms("+33 not a number", "hello", key="row-7")
    await collect(send_bulk(client, [wrong], journal=path))
    fixed = Sms(phone(7), "hello", key="row-7")
    # Without the option, the refusal names it: the earlier send failed, so it applies.
    (refused,) = await collect(send_bulk(client, [fixed], journal=path))
    assert refused.outcome is Outcome.FAILED
    assert "'row-7'" in str(refused.error)
    assert "replace_changed=True" in str(refused.error)
    assert "--replace-changed" in str(refused.error)
    await collect(send_bulk(client, [fixed], journal=path, replace_changed=True))
    message_id = emulator.messages()[0].message_id

    # Once sent, the option cannot help: the refusal says why, and what to do instead.
    other = Sms(phone(8), "hello", key="row-7")
    for replace_changed, why in [
        (True, "replaces only a message whose send failed"),
        (False, "was the input reordered"),
    ]:
        job = send_bulk(client, [other], journal=path, replace_changed=replace_changed)
        (kept,) = await collect(job)
        text = str(kept.error)
        assert kept.outcome is Outcome.FAILED
        assert f"already sent (message id {message_id})" in text
        assert why in text
        assert "a new key" in text or "a key of its own" in text
        assert "replace_changed=True" not in text  # it would not help here
    assert len(emulator.messages()) == 1


@pytest.mark.parametrize("state", ["uncertain", "attempting"])
async def test_a_changed_message_refused_with_replace_changed_says_it_may_have_been_sent(
    tmp_path: Path, state: str
) -> None:
    path = tmp_path / "job.db"
    first = Journal(path)
    await first.open()
    await first.claim("k:a", fingerprint(phone(0), "hello"), phone(0))
    if state != "attempting":
        await first.settle("k:a", state, reason="timed out")
    await first.aclose()
    replacing = Journal(path, replace_changed=True)
    await replacing.open()
    claim = await replacing.claim("k:a", fingerprint(phone(0), "hello, fixed"), phone(0))
    await replacing.aclose()
    assert claim.kind is ClaimKind.MISMATCH
    assert claim.reason is not None
    assert "may have been sent" in claim.reason
    assert "replaces only a message whose send failed" in claim.reason
    assert "a new key" in claim.reason
    assert "reordered" not in claim.reason


async def test_an_unclaimed_replacement_puts_the_old_message_back(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    before, after = fingerprint(phone(0), "hello"), fingerprint(phone(1), "hello")
    first = Journal(path)
    await first.open()
    await first.claim("k:a", before, phone(0))
    await first.settle("k:a", "failed", reason="bad number")
    await first.aclose()
    second = Journal(path, replace_changed=True)
    await second.open()
    claim = await second.claim("k:a", after, phone(1))
    second.unclaim("k:a", claim.previous)
    await second.aclose()
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT state, fingerprint, phone_number, reason FROM messages")
        assert stored.fetchone() == ("failed", before, phone(0), "bad number")


async def test_a_corrected_row_is_sent_with_replace_changed(
    client: VortextClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "job.db"
    wrong = Sms("+33 not a number", "hello", key="row-7")
    (first,) = await collect(send_bulk(client, [wrong], journal=path))
    assert first.outcome is Outcome.FAILED
    fixed = Sms(phone(7), "hello", key="row-7")
    (refused,) = await collect(send_bulk(client, [fixed], journal=path))
    assert refused.outcome is Outcome.FAILED
    assert "different message" in str(refused.error)
    assert emulator.messages() == []
    (sent,) = await collect(send_bulk(client, [fixed], journal=path, replace_changed=True))
    assert sent.outcome is Outcome.SENT
    assert not sent.resumed
    assert [m.phone_number for m in emulator.messages()] == [phone(7)]
    # Once sent, the key is never replaced again.
    other = Sms(phone(8), "hello", key="row-7")
    (kept,) = await collect(send_bulk(client, [other], journal=path, replace_changed=True))
    assert kept.outcome is Outcome.FAILED
    assert len(emulator.messages()) == 1
