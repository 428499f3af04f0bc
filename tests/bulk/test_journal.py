"""The bulk journal on its own: states, what a rerun is told, commits, group commit.

Each check reads the SQLite file through a separate connection, as another process
(or the next run) would: only committed rows are visible there.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vortext_async import JournalError
from vortext_async._bulk import ClaimKind, Journal, fingerprint, journal_key

FP = fingerprint("+33611272727", "hello")


def row(path: Path, key: str) -> tuple[object, ...] | None:
    with sqlite3.connect(path) as conn:
        found: tuple[object, ...] | None = conn.execute(
            "SELECT state, message_id, reason, retryable FROM messages WHERE key = ?", (key,)
        ).fetchone()
    return found


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@contextlib.asynccontextmanager
async def opened(
    path: Path, *, resend_uncertain: bool = False, retry_failed: bool = True
) -> AsyncIterator[Journal]:
    journal = Journal(path, resend_uncertain=resend_uncertain, retry_failed=retry_failed)
    await journal.open()
    try:
        yield journal
    finally:
        await journal.aclose()


def test_keys_keep_caller_keys_and_positions_apart() -> None:
    assert journal_key("5", 7) == "k:5"
    assert journal_key(None, 5) == "p:5"
    assert fingerprint("+33611272727", "hello") != fingerprint("+33611272727", "hello!")


async def test_a_send_claim_is_committed_when_it_returns(path: Path) -> None:
    async with opened(path) as journal:
        claim = await journal.claim("k:a", FP, "+33611272727")
        assert claim.kind is ClaimKind.SEND
        assert row(path, "k:a") == ("attempting", None, None, None)
        await journal.settle("k:a", "sent", message_id="m-1")
        assert row(path, "k:a") == ("sent", "m-1", None, 0)


async def test_writes_waiting_together_share_one_commit(path: Path) -> None:
    async with opened(path) as journal:
        before = journal.commits
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer thread waits for this lock
        claims = [journal.claim(f"k:{n}", FP, "+33611272727") for n in range(300)]
        await asyncio.sleep(0)
        blocker.execute("COMMIT")
        blocker.close()
        kinds = {claim.kind for claim in await asyncio.gather(*claims)}
        assert kinds == {ClaimKind.SEND}
        assert journal.commits - before <= 2  # 300 claims, at most two transactions
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (300,)


@pytest.mark.parametrize(
    ("state", "retryable", "options", "expected"),
    [
        ("sent", False, {}, ClaimKind.SENT),
        ("failed", True, {}, ClaimKind.SEND),
        ("failed", True, {"retry_failed": False}, ClaimKind.FAILED),
        ("failed", False, {}, ClaimKind.FAILED),
        ("uncertain", False, {}, ClaimKind.UNCERTAIN),
        ("uncertain", False, {"resend_uncertain": True}, ClaimKind.SEND),
        ("attempting", False, {}, ClaimKind.UNCERTAIN),
        ("attempting", False, {"resend_uncertain": True}, ClaimKind.SEND),
    ],
)
async def test_what_a_rerun_is_told_for_each_state(
    path: Path,
    state: str,
    retryable: bool,
    options: dict[str, bool],
    expected: ClaimKind,
) -> None:
    async with opened(path) as first:
        await first.claim("k:a", FP, "+33611272727")
        if state != "attempting":  # attempting: the process died before settling
            await first.settle("k:a", state, message_id="m-1", reason="why", retryable=retryable)
    async with opened(path, **options) as second:
        assert second.run == first.run + 1
        claim = await second.claim("k:a", FP, "+33611272727")
        assert claim.kind is expected
        if expected is ClaimKind.SENT:
            assert claim.message_id == "m-1"
        if expected is ClaimKind.SEND:
            assert row(path, "k:a") == ("attempting", None, None, None)
        else:
            assert row(path, "k:a")[0] == state  # type: ignore[index]


async def test_a_key_seen_twice_in_one_run_or_for_another_message_is_refused(path: Path) -> None:
    async with opened(path) as journal:
        await journal.claim("p:0", FP, "+33611272727")
        assert (await journal.claim("p:0", FP, "+33611272727")).kind is ClaimKind.DUPLICATE
    async with opened(path) as journal:
        other = fingerprint("+33611272727", "another text")
        assert (await journal.claim("p:0", other, "+33611272727")).kind is ClaimKind.MISMATCH
    assert row(path, "p:0") == ("attempting", None, None, None)


async def test_unclaim_puts_back_what_was_there(path: Path) -> None:
    async with opened(path) as journal:
        fresh = await journal.claim("k:new", FP, "+33611272727")
        await journal.claim("k:old", FP, "+33611272727")
        await journal.settle("k:old", "failed", reason="503", retryable=True)
    async with opened(path) as journal:
        again = await journal.claim("k:old", FP, "+33611272727")
        assert again.kind is ClaimKind.SEND
        journal.unclaim("k:old", again.previous)
        journal.unclaim("k:new", fresh.previous)  # no row before: removed
    assert row(path, "k:old") == ("failed", None, "503", 1)
    assert row(path, "k:new") is None


async def test_writes_not_waited_for_are_committed_by_aclose(path: Path) -> None:
    async with opened(path) as journal:
        await journal.claim("k:a", FP, "+33611272727")
        journal.settle_nowait("k:a", "uncertain", reason="stopped")
    assert row(path, "k:a") == ("uncertain", None, "stopped", 0)


async def test_a_journal_of_another_schema_version_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    journal = Journal(path)
    with pytest.raises(JournalError, match="schema version 99"):
        await journal.open()
    await journal.aclose()


async def test_an_unwritable_path_fails_at_open(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "missing-dir" / "j.db")
    with pytest.raises(JournalError, match="missing-dir"):
        await journal.open()
    await journal.aclose()
