"""The ``vortext`` command line, driven through typer's CliRunner and as a real process.

Every command talks to a real emulator: served on loopback from a background thread
(its own event loop) for the in-process runs, so the command's ``asyncio.run`` and
the real socket path are exercised; the subprocess runs use the installed entry point.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vortext_async import BadLineError, InputFormatError, Outcome, Sms
from vortext_async.cli import app
from vortext_async.cli._demo import demo_windows
from vortext_async.cli._input import count_records, detect_format, read_messages
from vortext_async.emulator import Emulator, serve_emulator

VORTEXT = Path(sys.executable).with_name("vortext")
PASSWORD = "s3cret-Pa55word"
GOOD = "+33611272727"


# -- an emulator on loopback, served from another thread ----------------------------


class Served:
    """``emulator`` served on loopback by its own event loop in a background thread."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_emulator(self.emulator) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(30), "the emulator did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def env(self, password: str = PASSWORD) -> dict[str, str]:
        return {
            "VORTEXT_BASE_URL": self.url,
            "VORTEXT_USERNAME": "alice",
            "VORTEXT_PASSWORD": password,
        }


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(Emulator(users={"alice": PASSWORD}, seed=1)) as running:
        yield running


def invoke(served: Served, *args: str, password: str = PASSWORD) -> Any:
    return CliRunner().invoke(app, list(args), env=served.env(password), catch_exceptions=False)


# -- status, send, get ---------------------------------------------------------------


def test_status_shows_the_service_answer(served: Served) -> None:
    result = invoke(served, "status")
    assert result.exit_code == 0, result.output
    assert "UP" in result.stdout
    assert served.url in result.stdout
    as_json = invoke(served, "status", "--json")
    assert json.loads(as_json.stdout)["status"] == "UP"


def test_send_then_get_round_trips_the_metadata(served: Served) -> None:
    sent = invoke(served, "send", GOOD, "Please call me", "-m", "customer=123de32", "--json")
    assert sent.exit_code == 0, sent.output
    message_id = json.loads(sent.stdout)["messageId"]
    assert served.emulator.received_count(GOOD, "Please call me", {"customer": "123de32"}) == 1

    shown = invoke(served, "get", message_id)
    assert shown.exit_code == 0, shown.output
    assert "Please call me" in shown.stdout
    assert '{"customer": "123de32"}' in shown.stdout

    detail = json.loads(invoke(served, "get", message_id, "--json").stdout)
    assert detail["metadata"] == {"customer": "123de32"}
    assert detail["phoneNumber"] == GOOD

    plain = invoke(served, "send", GOOD, "Hello")
    assert plain.exit_code == 0
    assert re.search(r"sent: message id [0-9a-f-]{36}", plain.stdout)


def test_credentials_come_from_flags_too_and_are_never_printed(served: Served) -> None:
    runner = CliRunner()
    env = {"VORTEXT_USERNAME": None, "VORTEXT_PASSWORD": None, "VORTEXT_BASE_URL": None}
    args = ["--username", "alice", "--base-url", served.url]
    ok = runner.invoke(app, ["status", *args, "--password", PASSWORD], env=env)
    assert ok.exit_code == 0, ok.output
    assert PASSWORD not in ok.output

    helped = runner.invoke(app, ["bulk", "--help"], env={"VORTEXT_PASSWORD": PASSWORD})
    assert "VORTEXT_PASSWORD" in helped.stdout
    assert PASSWORD not in helped.output

    wrong = "not-the-" + PASSWORD
    refused = runner.invoke(app, ["send", GOOD, "hi", *args, "--password", wrong], env=env)
    assert refused.exit_code == 1
    assert "401" in refused.stderr
    assert "VORTEXT_PASSWORD" in refused.stderr
    assert wrong not in refused.output
    assert served.emulator.stats.accepted == 0


def test_missing_credentials_are_a_usage_error_naming_the_variable(served: Served) -> None:
    env = {"VORTEXT_USERNAME": "alice", "VORTEXT_PASSWORD": None, "VORTEXT_BASE_URL": served.url}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 2
    assert "VORTEXT_PASSWORD" in result.stderr
    assert served.emulator.stats.requests == 0


def test_a_bad_send_is_refused_before_anything_is_sent(served: Served) -> None:
    result = invoke(served, "send", "0611272727", "hi")
    assert result.exit_code == 1
    assert "phone_number" in result.stderr
    bad_metadata = invoke(served, "send", GOOD, "hi", "--metadata", "no-equals-sign")
    assert bad_metadata.exit_code == 2
    assert "KEY=VALUE" in bad_metadata.output
    assert served.emulator.stats.requests == 0


def test_an_unknown_message_id_is_a_clear_404(served: Served) -> None:
    result = invoke(served, "get", "no-such-id")
    assert result.exit_code == 1
    assert "404" in result.stderr


def test_an_uncertain_send_has_its_own_exit_code_and_is_not_resent() -> None:
    emulator = Emulator(users={"alice": PASSWORD}, error_rate=1.0, error_statuses=[500])
    with Served(emulator) as served:
        result = invoke(served, "send", GOOD, "once")
    assert result.exit_code == 3
    assert "may or may not have been sent" in result.stderr
    assert emulator.stats.requests == 1  # taken by the server, answer lost, never resent
    assert emulator.received_count(GOOD, "once") == 1


# -- reading input files -------------------------------------------------------------


def read(data: bytes, fmt: Any) -> tuple[list[Sms], list[Any]]:
    bad: list[Any] = []
    messages = list(read_messages(io.BytesIO(data), fmt, source="in", on_bad_line=bad.append))
    return messages, bad


def test_csv_columns_keys_metadata_and_multiline_messages() -> None:
    data = (
        "\ufeffphone_number,message,key,customer,team\n"
        '+33611272727,"Hello, you",k1,c1,\n'
        '+33611272728,"two\nlines",,c2,blue\n'
        "\n"
        "+33611272729,last,,,\n"
    ).encode()
    messages, bad = read(data, "csv")
    assert bad == []
    assert messages == [
        Sms("+33611272727", "Hello, you", metadata={"customer": "c1"}, key="k1"),
        Sms(
            "+33611272728", "two\nlines", metadata={"customer": "c2", "team": "blue"}, key="line 3"
        ),
        Sms("+33611272729", "last", key="line 6"),
    ]
    assert count_records(io.BytesIO(data), "csv") == 3


def test_bad_csv_lines_are_failed_results_with_their_line_number() -> None:
    data = (
        b"phoneNumber,message\n"
        b"+33611272727,fine\n"
        b"+33611272728\n"  # line 3: one field
        b",no phone\n"  # line 4
        b"+33611272729,\xff\xfe\n"  # line 5: not UTF-8
        b"+33611272730,also fine\n"
    )
    messages, bad = read(data, "csv")
    assert [m.message for m in messages] == ["fine", "also fine"]
    assert all(result.outcome is Outcome.FAILED for result in bad)
    assert [result.error.line for result in bad] == [3, 4, 5]
    assert all(isinstance(result.error, BadLineError) for result in bad)
    assert str(bad[0].error) == "in, line 3: has 1 fields, the header has 2"
    assert "not valid UTF-8" in str(bad[2].error)
    assert bad[0].sms.phone_number == "+33611272728"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"", "empty"),
        (b"phone,text\n+33611272727,hi\n", "phone_number and message"),
        (b"phone_number,message,message\n", "duplicate"),
    ],
)
def test_a_csv_file_without_the_needed_header_is_refused_whole(data: bytes, named: str) -> None:
    with pytest.raises(InputFormatError, match=named):
        read(data, "csv")


def test_json_lines_and_their_bad_lines() -> None:
    lines = [
        {"phone_number": GOOD, "message": "a", "metadata": {"n": 1}, "key": 7},
        "not json",
        ["a", "list"],
        {"phoneNumber": GOOD, "message": "b", "phone": "typo"},
        {"phone_number": GOOD, "message": "c", "metadata": "flat"},
        {"phone_number": GOOD},
        {"phoneNumber": GOOD, "message": "d"},
    ]
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    messages, bad = read((text + "\n\n").encode(), "jsonl")
    assert messages == [
        Sms(GOOD, "a", metadata={"n": 1}, key="7"),
        Sms(GOOD, "d", key="line 7"),
    ]
    reasons = {result.error.line: result.error.reason for result in bad}
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert "not valid JSON" in reasons[2]
    assert "expected a JSON object" in reasons[3]
    assert "'phone'" in reasons[4]
    assert "metadata must be a JSON object" in reasons[5]
    assert "message is missing" in reasons[6]


def test_input_is_read_lazily() -> None:
    class CountingStream:
        def __init__(self, data: bytes) -> None:
            self._lines = io.BytesIO(data)
            self.lines_read = 0

        def __iter__(self) -> Any:
            for line in self._lines:
                self.lines_read += 1
                yield line

    stream = CountingStream(
        b"phone_number,message\n" + b"".join(b"+3361127%04d,m\n" % i for i in range(1000))
    )
    messages = read_messages(stream, "csv", source="in", on_bad_line=print)  # type: ignore[arg-type]
    next(messages)
    next(messages)
    assert stream.lines_read == 3


def test_the_format_comes_from_the_extension_or_the_option() -> None:
    assert detect_format("a.CSV", None) == "csv"
    assert detect_format("a.ndjson", None) == "jsonl"
    assert detect_format("-", "jsonl") == "jsonl"
    with pytest.raises(InputFormatError, match="--format"):
        detect_format("a.txt", None)


# -- bulk ---------------------------------------------------------------------------


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("phone_number,message,campaign\n" + "".join(row + "\n" for row in rows))
    return path


def numbered(count: int, start: int = 0) -> list[str]:
    return [f"+336112{i:05d},Message {i},spring" for i in range(start, start + count)]


def test_bulk_reports_a_bad_line_and_sends_the_rest(served: Served, tmp_path: Path) -> None:
    rows = [*numbered(3), "+33600000000", *numbered(3, start=3)]  # line 5: one field
    report = tmp_path / "report.csv"
    result = invoke(
        served, "bulk", str(write_csv(tmp_path / "in.csv", rows)), "--report", str(report)
    )
    assert result.exit_code == 1, result.output
    assert "line 5" in result.stderr
    assert re.search(r"sent\s+│\s+6\b", result.stdout)
    assert re.search(r"failed\s+│\s+1 \(1 bad input lines\)", result.stdout)
    stats = served.emulator.stats
    assert stats.accepted == 6
    assert served.emulator.duplicates() == {}
    assert served.emulator.received_count("+33611200004", "Message 4", {"campaign": "spring"}) == 1

    with report.open() as lines:
        outcomes = {row["key"]: row for row in csv.DictReader(lines)}
    assert outcomes["line 5"]["outcome"] == "failed"
    assert "line 5" in outcomes["line 5"]["error"]
    assert sum(row["outcome"] == "sent" and bool(row["message_id"]) for row in outcomes.values())


def test_bulk_of_json_lines_sends_every_message_with_exit_code_0(
    served: Served, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            json.dumps({"phone_number": f"+3361127{i:04d}", "message": "hi", "metadata": {"i": i}})
            + "\n"
            for i in range(20)
        )
    )
    result = invoke(served, "bulk", str(path), "--concurrency", "4", "--per-minute", "1000")
    assert result.exit_code == 0, result.output
    assert served.emulator.stats.accepted == 20
    assert served.emulator.received_count("+33611270007", "hi", {"i": 7}) == 1
    assert "at most 1,000 per minute" in result.stderr


def test_bulk_with_a_journal_resumes_without_resending(served: Served, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(10))
    journal = tmp_path / "job.db"
    first = invoke(served, "bulk", str(path), "--journal", str(journal))
    assert first.exit_code == 0, first.output
    again = invoke(served, "bulk", str(path), "--journal", str(journal))
    assert again.exit_code == 0, again.output
    assert re.search(r"taken from the journal\s+│\s+10\b", again.stdout), again.stdout
    assert served.emulator.stats.accepted == 10
    assert served.emulator.duplicates() == {}


def test_bulk_gives_up_on_an_account_refusing_longer_than_its_patience(tmp_path: Path) -> None:
    # Two sends an hour: the third is refused with Retry-After of about an hour, past
    # a patience of a minute, so the job gives up: the rest fail unsent, at once.
    emulator = Emulator(users={"alice": PASSWORD}, windows=[(2, 3600.0)], seed=1)
    report = tmp_path / "report.csv"
    with Served(emulator) as served:
        result = invoke(
            served,
            "bulk",
            str(write_csv(tmp_path / "in.csv", numbered(5))),
            "--concurrency",
            "1",
            "--rate-limit-patience",
            "60",
            "--report",
            str(report),
        )
    assert result.exit_code == 1, result.output
    assert (emulator.stats.accepted, emulator.stats.refused) == (2, 1)  # nothing more sent
    with report.open() as lines:
        errors = [row["error"] for row in csv.DictReader(lines) if row["outcome"] == "failed"]
    assert len(errors) == 3
    assert "429" in errors[0]
    assert all("rate_limit_patience of 60 s" in error for error in errors[1:])


def test_bulk_refuses_a_negative_patience(served: Served, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(1))
    result = invoke(served, "bulk", str(path), "--rate-limit-patience", "-1")
    assert result.exit_code == 2
    assert served.emulator.stats.requests == 0


def test_bulk_refuses_a_file_it_cannot_read(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("phone,text\n+33611272727,hi\n")
    result = invoke(served, "bulk", str(path))
    assert result.exit_code == 2
    assert "phone_number and message" in result.stderr
    assert invoke(served, "bulk", str(tmp_path / "missing.csv")).exit_code == 2
    assert served.emulator.stats.requests == 0


# -- demo and emulator ---------------------------------------------------------------


def test_demo_windows_scale_to_the_wanted_duration() -> None:
    assert demo_windows(3000, 15.0) == ((62, 0.25), (250, 1.0))
    assert demo_windows(10, 100.0) == ((1, 0.25), (1, 1.0))


def test_a_tiny_demo_sends_everything_with_no_cap_violation() -> None:
    result = CliRunner().invoke(app, ["demo", "--messages", "50", "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    assert re.search(r"sent\s+│\s+50\b", result.stdout)
    assert re.search(r"emulator: accepted\s+│\s+50\b", result.stdout)
    assert re.search(r"emulator: cap violations\s+│\s+0\b", result.stdout)


def test_the_emulator_command_configures_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def run_emulator(emulator: Emulator, **options: Any) -> None:
        seen.update(options, emulator=emulator)
        options["on_ready"]("http://127.0.0.1:9999")

    monkeypatch.setattr("vortext_async.emulator.run_emulator", run_emulator)
    args = ["emulator", "--port", "9999", "--per-minute", "60", "--window", "5/1.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["port"] == 9999
    assert seen["emulator"].windows == ((60, 60.0), (5, 1.5))
    assert "VORTEXT_BASE_URL=http://127.0.0.1:9999" in result.stderr

    secret = CliRunner().invoke(app, ["emulator", "--user", f"bob:{PASSWORD}"])
    assert secret.exit_code == 0
    assert "bob" in secret.stderr
    assert PASSWORD not in secret.output
    assert CliRunner().invoke(app, ["emulator", "--window", "5"]).exit_code == 2


# -- real processes ------------------------------------------------------------------


class Process:
    """A ``vortext`` subprocess whose stderr lines can be awaited one by one."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(VORTEXT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.stderr: list[str] = []
        self._pending = b""

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Read stderr until a line matches (the timeout only guards against a hang)."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                while b"\n" in self._pending:
                    raw, _, self._pending = self._pending.partition(b"\n")
                    line = raw.decode() + "\n"
                    self.stderr.append(line)
                    found = re.search(pattern, line)
                    if found:
                        return found
                if not selector.select(deadline - time.monotonic()):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._pending += chunk
        self.proc.kill()
        raise AssertionError(f"no line matching {pattern!r} in {''.join(self.stderr)}")

    def finish(self) -> tuple[int, str, str]:
        stdout, stderr = self.proc.communicate(timeout=60)
        rest = (self._pending + stderr).decode()
        return self.proc.returncode, stdout.decode(), "".join(self.stderr) + rest


def test_the_installed_command_runs_a_demo() -> None:
    process = Process("demo", "--messages", "40", "--seconds", "0.4")
    code, stdout, stderr = process.finish()
    assert code == 0, stdout + stderr
    assert re.search(r"emulator: cap violations\s+│\s+0\b", stdout)
    assert re.search(r"sent\s+│\s+40\b", stdout)


def test_the_installed_emulator_command_serves_until_ctrl_c() -> None:
    process = Process("emulator", "--port", "0", "--user", f"alice:{PASSWORD}")
    url = process.wait_for_line(r"listening on (http://\S+)").group(1)
    status = CliRunner().invoke(
        app,
        ["status"],
        env={"VORTEXT_BASE_URL": url, "VORTEXT_USERNAME": "alice", "VORTEXT_PASSWORD": PASSWORD},
    )
    assert status.exit_code == 0, status.output
    process.proc.send_signal(signal.SIGINT)
    code, _, stderr = process.finish()
    assert code == 0, stderr
    assert PASSWORD not in stderr


class Gate(Emulator):
    """Answers the first ``open_for`` sends at once, then holds each until released.

    ``held`` is set once ``hold`` sends are waiting at the gate.
    """

    def __init__(self, *, open_for: int, hold: int, **options: Any) -> None:
        super().__init__(**options)
        self.open_for = open_for
        self.hold = hold
        self.posts = 0
        self.waiting = 0
        self.held = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.posts += 1
            if self.posts > self.open_for:
                self.waiting += 1
                if self.waiting == self.hold:
                    self.held.set()
                await asyncio.to_thread(self.release.wait, 60)
        await super().__call__(scope, receive, send)


def test_ctrl_c_during_bulk_lets_sends_in_flight_finish_then_summarises(tmp_path: Path) -> None:
    gate = Gate(open_for=5, hold=2, users={"alice": PASSWORD})
    path = write_csv(tmp_path / "in.csv", numbered(50))
    journal = tmp_path / "job.db"
    with Served(gate) as served:
        args = ["bulk", str(path), "--concurrency", "2", "--journal", str(journal)]
        process = Process(*args, env=served.env())
        try:
            assert gate.held.wait(60), "the job never reached the gate"
            # 5 sent, 2 in flight held at the gate: Ctrl-C now.
            process.proc.send_signal(signal.SIGINT)
            process.wait_for_line(r"stopping: no new sends")
        finally:
            gate.release.set()  # the two in flight may now finish, within the grace
        code, stdout, stderr = process.finish()
        assert code == 130, stdout + stderr
        assert "Summary (stopped by Ctrl-C)" in stdout
        assert re.search(r"sent\s+│\s+7\b", stdout), stdout
        assert re.search(r"not attempted\s+│\s+43\b", stdout), stdout
        assert re.search(r"uncertain\s+│\s+0\b", stdout), stdout
        assert gate.stats.accepted == 7
        assert gate.posts == 7

        # The same command again finishes the job from the journal: nothing twice.
        resumed = invoke(served, *args)
    assert resumed.exit_code == 0, resumed.output
    assert re.search(r"taken from the journal\s+│\s+7\b", resumed.stdout), resumed.stdout
    assert gate.stats.accepted == 50
    assert gate.duplicates() == {}


def test_a_second_ctrl_c_cuts_the_sends_in_flight_short_as_uncertain(tmp_path: Path) -> None:
    gate = Gate(open_for=5, hold=2, users={"alice": PASSWORD})
    path = write_csv(tmp_path / "in.csv", numbered(50))
    with Served(gate) as served:
        process = Process("bulk", str(path), "--concurrency", "2", env=served.env())
        try:
            assert gate.held.wait(60), "the job never reached the gate"
            process.proc.send_signal(signal.SIGINT)
            process.wait_for_line(r"stopping: no new sends")
            process.proc.send_signal(signal.SIGINT)  # well within the 10 s grace
            process.wait_for_line(r"cutting the sends in flight short")
            code, stdout, stderr = process.finish()
        finally:
            gate.release.set()
    assert code == 130, stdout + stderr
    assert re.search(r"sent\s+│\s+5\b", stdout), stdout
    assert re.search(r"uncertain\s+│\s+2\b", stdout), stdout
    assert "2 message(s) may or may not have been sent" in stdout
    assert gate.duplicates() == {}
