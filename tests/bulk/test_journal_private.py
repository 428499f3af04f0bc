"""A bulk job's journal is created readable by its owner only, its SQLite side files too."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vortext_async import Sms, send_bulk
from vortext_async.emulator import Emulator
from vortext_async.testing import emulator_client


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


@pytest.mark.usefixtures("permissive_umask")
async def test_the_journal_and_its_wal_and_shm_files_are_0600(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    emulator = Emulator(users={"demo": "demo"})
    messages = [Sms(f"+3361127{i:04d}", f"m{i}") for i in range(3)]
    async with emulator_client(emulator) as client:
        job = send_bulk(client, messages, concurrency=1, journal=journal)
        async for _ in job:
            # While the job runs, SQLite holds its write-ahead log and shared memory.
            assert modes(tmp_path) == {
                "job.db": 0o600,
                "job.db-wal": 0o600,
                "job.db-shm": 0o600,
                "job.db.lock": 0o600,
            }
    await emulator.aclose()


async def test_an_existing_journal_keeps_its_mode(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    journal.touch(mode=0o640)
    journal.chmod(0o640)
    emulator = Emulator(users={"demo": "demo"})
    async with emulator_client(emulator) as client:
        async for _ in send_bulk(client, [Sms("+33611270000", "m")], journal=journal):
            pass
    await emulator.aclose()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o640
