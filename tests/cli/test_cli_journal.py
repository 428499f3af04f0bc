"""``vortext bulk`` with journals (busy, jobs, corrected rows, PostgreSQL) and ``vortext journal``.

The emulator is served on loopback from a background thread (``Served``); the
multi-host proof runs three installed ``vortext bulk`` processes against it and a
throwaway PostgreSQL.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import PASSWORD, Process, Served, invoke, numbered, write_csv
from tests.support.postgres_server import (
    SKIP_REASON,
    PostgresServer,
    find_postgres_bin,
    running_postgres,
)
from vortext_async import JournalError, Sms, journal_jobs, journal_status, send_bulk
from vortext_async.emulator import Emulator
from vortext_async.testing import emulator_client

HOLDER = """
import asyncio, sys
from vortext_async._bulk import Journal

async def main():
    journal = Journal(sys.argv[1])
    await journal.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await journal.aclose()

asyncio.run(main())
"""


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(Emulator(users={"alice": PASSWORD}, seed=1)) as running:
        yield running


def test_a_second_job_on_a_busy_sqlite_journal_exits_2_and_sends_nothing(
    served: Served, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(5))
    journal = tmp_path / "job.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        result = invoke(served, "bulk", str(path), "--journal", str(journal))
    finally:
        holder.communicate("", timeout=30)
    assert result.exit_code == 2, result.output
    assert "progress:" not in result.stdout  # nothing was read: no "stopped, 5 not sent"
    assert "is in use by another running job" in result.stderr
    assert str(journal) in result.stderr.replace("\n", "")
    assert f"pid {holder.pid}" in result.stderr
    assert served.emulator.stats.requests == 0
    # The holder has ended: the same command now runs.
    again = invoke(served, "bulk", str(path), "--journal", str(journal))
    assert again.exit_code == 0, again.output
    assert served.emulator.stats.accepted == 5


def test_the_job_is_named_after_the_input_file_and_vortext_journal_shows_it(
    served: Served, tmp_path: Path
) -> None:
    journal = tmp_path / "jobs.db"
    monday = write_csv(tmp_path / "monday.csv", numbered(4))
    tuesday = write_csv(tmp_path / "tuesday.csv", numbered(3))  # the same positions
    assert invoke(served, "bulk", str(monday), "--journal", str(journal)).exit_code == 0
    assert invoke(served, "bulk", str(tuesday), "--journal", str(journal)).exit_code == 0
    assert served.emulator.stats.accepted == 7  # positions are per job: nothing skipped

    listing = invoke(served, "journal", str(journal), "--json")
    assert listing.exit_code == 0, listing.output
    jobs = json.loads(listing.stdout)["jobs"]
    assert jobs["monday.csv"]["sent"] == 4
    assert jobs["tuesday.csv"]["sent"] == 3

    one = invoke(served, "journal", str(journal), "--job", "monday.csv")
    assert one.exit_code == 0, one.output
    assert re.search(r"sent\s+│\s+4\b", one.stdout), one.stdout
    assert "Runs" in one.stdout

    named = invoke(served, "bulk", str(tuesday), "--journal", str(journal), "--job", "other")
    assert named.exit_code == 0
    assert served.emulator.stats.accepted == 10

    missing = invoke(served, "journal", str(tmp_path / "nope.db"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr

    unknown = invoke(served, "journal", str(journal), "--job", "nope")
    assert unknown.exit_code == 2, unknown.output
    assert unknown.stdout == ""
    assert "no job 'nope'" in unknown.stderr
    assert "'monday.csv', 'other', 'tuesday.csv'" in unknown.stderr


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not a database at all\n" * 10, "not an SQLite database"),
        (None, "without its tables"),  # an SQLite file of another program
    ],
    ids=["garbage", "other-sqlite"],
)
def test_vortext_journal_on_a_file_that_is_not_a_journal_is_one_error_line(
    served: Served, tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "notes.db"
    if content is None:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (text)")
        conn.close()
    else:
        path.write_bytes(content)
    for args in ([], ["--job", "x"]):
        result = invoke(served, "journal", str(path), *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1  # one line, no traceback
        assert result.stderr.startswith("error: ")
        assert f"journal {path} is not a bulk journal" in result.stderr
        assert why in result.stderr


async def test_a_file_that_is_not_a_journal_is_a_journal_error_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all\n" * 10)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text)")
    conn.close()
    for path in (garbage, other):
        for read in (journal_jobs(path), journal_status(path, "x")):
            with pytest.raises(JournalError, match=f"journal {path} is not a bulk journal"):
                await read
        served_nothing = Emulator(users={"demo": "demo"})
        async with emulator_client(served_nothing) as client:
            job = send_bulk(client, [Sms("+33611272727", "hi")], journal=path)
            with pytest.raises(JournalError, match=f"journal {path} is not a bulk journal"):
                async for _ in job:
                    pass
        assert served_nothing.stats.requests == 0
    with sqlite3.connect(other) as conn:  # not written to
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    conn.close()


def test_replace_changed_resends_a_corrected_row(served: Served, tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    path = tmp_path / "in.csv"
    path.write_text("key,phone_number,message\nr1,+33611200001,hi\nr2,+33 not a number,hi\n")
    first = invoke(served, "bulk", str(path), "--journal", str(journal))
    assert first.exit_code == 1
    path.write_text("key,phone_number,message\nr1,+33611200001,hi\nr2,+33611200002,hi\n")
    refused = invoke(served, "bulk", str(path), "--journal", str(journal))
    assert refused.exit_code == 1
    assert "different message" in refused.stderr
    fixed = invoke(served, "bulk", str(path), "--journal", str(journal), "--replace-changed")
    assert fixed.exit_code == 0, fixed.output
    assert served.emulator.received_count("+33611200002", "hi") == 1
    assert served.emulator.received_count("+33611200001", "hi") == 1
    assert invoke(served, "bulk", str(path), "--replace-changed").exit_code == 2  # no journal


@pytest.mark.skipif(find_postgres_bin() is None, reason=SKIP_REASON)
def test_three_vortext_bulk_processes_share_one_campaign(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")
    count = 600
    path = write_csv(tmp_path / "campaign.csv", numbered(count))
    with running_postgres() as server, Served(Emulator(users={"alice": PASSWORD})) as served:
        url = _database(server)
        args = ["bulk", str(path), "--journal", url, "--concurrency", "8"]
        hosts = [Process(*args, env=served.env()) for _ in range(3)]
        finished = [host.finish() for host in hosts]
        assert [code for code, _, _ in finished] == [0, 0, 0], finished
        assert served.emulator.duplicates() == {}
        assert served.emulator.stats.accepted == count
        sent = [int(re.search(r"sent\s+│\s+([\d,]+)", out).group(1)) for _, out, _ in finished]  # type: ignore[union-attr]
        assert sum(sent) == count
        status = invoke(served, "journal", url, "--job", "campaign.csv", "--json")
    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert data["counts"]["sent"] == count
    assert len(data["runs"]) == 3
    assert "postgresql://" in data["journal"]


def _count(name: str, summary: str) -> int:
    found = re.search(rf"^│ {name}\s+│\s+([\d,]+)", summary, re.MULTILINE)
    return int(found.group(1).replace(",", "")) if found else 0


def _wait_for_received(emulator: Emulator, count: int) -> None:
    # Polls another process's progress, as seen by the server; decides nothing by time.
    while len(emulator.messages()) < count:
        time.sleep(0.01)


CAMPAIGN = 1200
CONCURRENCY = "8"


@pytest.mark.skipif(find_postgres_bin() is None, reason=SKIP_REASON)
def test_a_killed_vortext_bulk_host_leaves_at_most_its_in_flight_messages_uncertain(
    tmp_path: Path,
) -> None:
    pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")
    path = write_csv(tmp_path / "campaign.csv", numbered(CAMPAIGN))
    emulator = Emulator(users={"alice": PASSWORD}, latency=0.002)
    with running_postgres() as server, Served(emulator) as served:
        args = ["bulk", str(path), "--journal", _database(server), "--concurrency", CONCURRENCY]
        hosts = [Process(*args, env=served.env()) for _ in range(3)]
        _wait_for_received(emulator, CAMPAIGN // 3)
        hosts[0].proc.send_signal(signal.SIGKILL)
        finished = [host.finish() for host in hosts]
        assert finished[0][0] == -signal.SIGKILL
        assert all(code in (0, 1) for code, _, _ in finished[1:]), finished  # no crash

        code, stdout, stderr = Process(*args, env=served.env()).finish()
    assert "Traceback" not in stderr
    assert emulator.duplicates() == {}  # no key twice
    sent, uncertain = _count("sent", stdout), _count("uncertain", stdout)
    assert (sent + uncertain, _count("failed", stdout)) == (CAMPAIGN, 0), stdout
    assert uncertain <= int(CONCURRENCY)  # at most the killed host's in-flight messages
    assert code == (1 if uncertain else 0)
    assert sent <= len(emulator.messages()) <= CAMPAIGN  # nothing lost silently


@pytest.mark.skipif(find_postgres_bin() is None, reason=SKIP_REASON)
def test_postgres_stopped_under_vortext_bulk_is_one_error_line_exit_1_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    pytest.importorskip("psycopg", reason="the 'postgres' extra (psycopg) is not installed")
    path = write_csv(tmp_path / "campaign.csv", numbered(CAMPAIGN))
    emulator = Emulator(users={"alice": PASSWORD}, latency=0.002)
    with running_postgres() as server, Served(emulator) as served:
        args = ["bulk", str(path), "--journal", _database(server), "--concurrency", CONCURRENCY]
        host = Process(*args, env=served.env())
        _wait_for_received(emulator, CAMPAIGN // 4)
        server.stop()
        at_stop = len(emulator.messages())
        code, stdout, stderr = host.finish()
        after = len(emulator.messages())
        # The job failed (docs/cli.md: exit 1), with one error line saying why.
        assert code == 1, stderr
        assert "Traceback" not in stderr
        [error] = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert "connection was lost" in error
        assert "claims no more messages" in error
        assert "error ignored" not in stderr  # psycopg's own noise about the same loss
        assert after - at_stop <= int(CONCURRENCY)  # it stopped claiming at once
        assert after < CAMPAIGN

        server.start()
        code, stdout, stderr = Process(*args, env=served.env()).finish()
    assert emulator.duplicates() == {}
    sent, uncertain = _count("sent", stdout), _count("uncertain", stdout)
    assert (sent + uncertain, _count("failed", stdout)) == (CAMPAIGN, 0), stdout
    # Those in flight when the server stopped went out, unrecorded: UNCERTAIN, not resent.
    assert uncertain <= int(CONCURRENCY)
    assert code == (1 if uncertain else 0), stderr
    assert sent <= len(emulator.messages()) <= sent + uncertain


def _database(server: PostgresServer) -> str:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE cli")
    return server.url.rsplit("/", 1)[0] + "/cli"
