"""``vortext bulk`` on hostile or broken files and journals, as a real process.

Each case runs the installed ``vortext`` command against an emulator on loopback and
checks the exit code, the one line that explains the problem (file and line, or
path), and what the emulator received: a bad record never stops the good ones.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.served import served_emulator
from vortext_async.emulator import Emulator

VORTEXT = Path(sys.executable).with_name("vortext")
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(users={"alice": PASSWORD}, seed=1)


@pytest.fixture
def url(emulator: Emulator) -> Iterator[str]:
    with served_emulator(emulator) as served:
        yield served


def vortext(url: str, *args: str, umask: int | None = None) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "VORTEXT_BASE_URL": url,
        "VORTEXT_USERNAME": "alice",
        "VORTEXT_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        [str(VORTEXT), *args],
        capture_output=True,
        env=env,
        timeout=120,
        umask=-1 if umask is None else umask,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def error_lines(stderr: str) -> list[str]:
    """The lines that report a problem (not the progress bar or the intro)."""
    return [line for line in stderr.splitlines() if line.startswith(("error:", "failed"))]


def good(i: int) -> str:
    return f"+3361127{i:04d}"


# -- CSV -------------------------------------------------------------------------------


def test_a_csv_field_over_the_csv_limit_is_one_failed_row(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "phone_number,message\n"
        f"{good(1)},first\n"
        f"{good(2)},{'x' * 140_000}\n"  # line 3: over csv.field_size_limit() (128 KiB)
        f"{good(3)},last\n"
    )
    report = tmp_path / "report.csv"
    code, _stdout, stderr = vortext(url, "bulk", str(path), "--report", str(report))
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert error_lines(stderr) == [
        f"failed {path}, line 3: a field is longer than 131,072 characters"
    ]
    assert emulator.received_count(good(1), "first") == 1
    assert emulator.received_count(good(3), "last") == 1
    assert emulator.stats.accepted == 2
    with report.open() as lines:
        rows = {row["key"]: row for row in csv.DictReader(lines)}
    assert rows["line 3"]["outcome"] == "failed"
    assert "longer than 131,072 characters" in rows["line 3"]["error"]


def test_a_csv_file_with_cr_only_line_ends_is_read(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(
        b"phone_number,message,key\r"
        + b"".join(b"%s,Message %d,k%d\r" % (good(i).encode(), i, i) for i in range(5))
        + b'%s,"two\rlines",k5\r' % good(5).encode()
    )
    code, _stdout, stderr = vortext(url, "bulk", str(path))
    assert code == 0, stderr
    assert error_lines(stderr) == []
    assert emulator.stats.accepted == 6
    assert emulator.received_count(good(4), "Message 4") == 1
    assert emulator.received_count(good(5), "two\rlines") == 1


def test_a_stray_carriage_return_fails_its_row_only(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(
        b"phone_number,message\r\n"
        + f"{good(1)},first\r\n".encode()
        + f"{good(2)},half\rhalf\r\n".encode()  # line 3: a \r in an unquoted field
        + f'{good(3)},"quoted\rfine"\r\n'.encode()
        + f"{good(4)},last\n".encode()
    )
    code, _stdout, stderr = vortext(url, "bulk", str(path))
    assert code == 1, stderr
    assert "Traceback" not in stderr
    [line] = error_lines(stderr)
    assert line.startswith(f"failed {path}, line 3: a carriage return (\\r)")
    assert emulator.stats.accepted == 3
    assert emulator.received_count(good(3), "quoted\rfine") == 1
    assert emulator.received_count(good(4), "last") == 1
    assert emulator.received_count(good(2), "half") == 0


# -- JSON Lines ------------------------------------------------------------------------


def test_a_json_line_nested_100000_deep_fails_alone(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    deep = '{{"phone_number": "{}", "message": "deep", "metadata": {{"a": {}{}}}}}'.format(
        good(2),
        "[" * 100_000,
        "]" * 100_000,
    )
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"phone_number": good(1), "message": "first"})
        + "\n"
        + deep
        + "\n"
        + json.dumps({"phone_number": good(3), "message": "last"})
        + "\n"
    )
    code, _stdout, stderr = vortext(url, "bulk", str(path))
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert error_lines(stderr) == [f"failed {path}, line 2: not valid JSON: nested too deeply"]
    assert emulator.stats.accepted == 2
    assert emulator.received_count(good(3), "last") == 1


# -- echoed text -----------------------------------------------------------------------


def test_keys_and_texts_echoed_to_the_terminal_have_escapes_neutralised(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x9b31m\u202e"
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"phone_number": good(1), "message": "ok", "key": "k" + hostile})
        + "\n"
        # a bad line whose reason quotes the unknown field's name
        + json.dumps({"phone_number": good(2), "message": "x", hostile: 1})
        + "\n"
        # a message refused by the client: its key is echoed with the error
        + json.dumps({"phone_number": "0611" + hostile, "message": "y", "key": hostile})
        + "\n",
        encoding="utf-8",
    )
    code, stdout, stderr = vortext(url, "bulk", str(path))
    assert code == 1, stderr
    for output in (stdout, stderr):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in output)
        assert "\u202e" not in output
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\x9b31m\\u202e" in stderr
    assert len(error_lines(stderr)) == 2
    assert emulator.stats.accepted == 1


# -- journals and reports ---------------------------------------------------------------


def write_good(path: Path, count: int = 3) -> Path:
    path.write_text(
        "phone_number,message\n" + "".join(f"{good(i)},Message {i}\n" for i in range(count))
    )
    return path


@pytest.mark.parametrize("content", [os.urandom(8192), b"SQLite format 3\x00" + b"garbage" * 600])
def test_a_corrupt_journal_is_one_line_and_exit_2(
    url: str, emulator: Emulator, tmp_path: Path, content: bytes
) -> None:
    journal = tmp_path / "job.db"
    journal.write_bytes(content)
    code, _stdout, stderr = vortext(
        url, "bulk", str(write_good(tmp_path / "in.csv")), "--journal", str(journal)
    )
    assert code == 2, stderr
    assert "Traceback" not in stderr
    [line] = error_lines(stderr)
    assert line.startswith(f"error: cannot use the journal {journal}: file is not a database")
    assert emulator.stats.requests == 0


def test_a_journal_path_that_cannot_be_opened_is_one_line_and_exit_2(
    url: str, emulator: Emulator, tmp_path: Path
) -> None:
    source = str(write_good(tmp_path / "in.csv"))
    for journal, why in [
        (tmp_path / "no-such-dir" / "job.db", f"no such folder: {tmp_path / 'no-such-dir'}"),
        (tmp_path, "it is a folder, not a file"),
    ]:
        code, _stdout, stderr = vortext(url, "bulk", source, "--journal", str(journal))
        assert code == 2, stderr
        assert error_lines(stderr) == [f"error: cannot use the journal {journal}: {why}"]
    assert emulator.stats.requests == 0


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A valid journal that cannot be written (root: the immutable flag)."""
    journal = tmp_path / "ro.db"
    sqlite3.connect(journal).close()
    if os.geteuid() != 0:
        journal.chmod(0o444)
        yield journal
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root, and no chattr to make a file read-only for root")
    made = subprocess.run(["chattr", "+i", str(journal)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"running as root, and chattr +i failed: {made.stderr.decode().strip()}")
    try:
        yield journal
    finally:
        subprocess.run(["chattr", "-i", str(journal)], check=True)


def test_a_read_only_journal_is_one_line_and_exit_2(
    url: str, emulator: Emulator, tmp_path: Path, read_only: Path
) -> None:
    source = str(write_good(tmp_path / "in.csv"))
    code, _stdout, stderr = vortext(url, "bulk", source, "--journal", str(read_only))
    assert code == 2, stderr
    assert "Traceback" not in stderr
    [line] = error_lines(stderr)
    assert line.startswith(f"error: cannot use the journal {read_only}: ")
    assert "readonly" in line
    assert emulator.stats.requests == 0


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_journal_and_report_are_created_for_their_owner_only(
    url: str, emulator: Emulator, tmp_path: Path, umask: int
) -> None:
    journal, report = tmp_path / "job.db", tmp_path / "report.csv"
    source = str(write_good(tmp_path / "in.csv"))
    args = ["bulk", source, "--journal", str(journal), "--report", str(report)]
    code, _stdout, stderr = vortext(url, *args, umask=umask)
    assert code == 0, stderr
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert emulator.stats.accepted == 3
