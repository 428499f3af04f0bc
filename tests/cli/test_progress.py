"""``vortext bulk`` off a terminal: plain progress lines as they happen, true rates and ETA.

The process test reads the lines of a piped ``vortext bulk`` as they arrive, with
their times, against an emulator that answers each send after 50 ms (a paced job
of about a second).  It checks counts and consistency, never durations.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from tests.cli.test_cli import PASSWORD, VORTEXT, Served, numbered, write_csv
from vortext_async import (
    LimiterState,
    Outcome,
    RateLimitedError,
    SendResult,
    SentSms,
    Sms,
    VortextError,
    WindowState,
)
from vortext_async.cli import app
from vortext_async.cli._display import _Tally
from vortext_async.cli._progress import Counts, JobProgress, eta_seconds
from vortext_async.emulator import Emulator

LINE = re.compile(
    r"progress: elapsed (?P<elapsed>\d+:\d\d:\d\d) sent (?P<sent>\d+) failed (?P<failed>\d+) "
    r"uncertain (?P<uncertain>\d+) queued (?P<queued>\d+) rate (?P<rate>[\d.,]+)/s "
    r"over (?P<over>[\d.]+) s eta (?P<eta>\S.*)$"
)


def _seconds(clock: str) -> int:
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _read_lines(process: subprocess.Popen[bytes]) -> list[tuple[float, bool, str]]:
    """Each stdout line with the instant it arrived and whether the process still ran."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    lines: list[tuple[float, bool, str]] = []
    pending = b""
    deadline = time.monotonic() + 120  # only a guard against a hang
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                raw, _, pending = pending.partition(b"\n")
                lines.append((time.monotonic(), process.poll() is None, raw.decode()))
    return lines


def test_piped_bulk_prints_a_flushed_progress_line_per_interval(tmp_path: Path) -> None:
    total = 20
    path = write_csv(tmp_path / "in.csv", numbered(total))
    summary = tmp_path / "summary.json"
    args = ["bulk", str(path), "--concurrency", "1", "--per-minute", "600"]
    args += ["--progress-interval", "0.2", "--summary-json", str(summary)]
    with Served(Emulator(users={"alice": PASSWORD}, latency=0.05)) as served:
        process = subprocess.Popen(
            [str(VORTEXT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **served.env()},
        )
        lines = _read_lines(process)
        code = process.wait(60)
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
    assert code == 0, stderr
    progress = [(at, running, LINE.search(text)) for at, running, text in lines]
    progress = [(at, running, found) for at, running, found in progress if found]
    assert len(progress) >= 3, lines  # the job lasts 20 x 50 ms at least: 5 intervals
    # Flushed as they happen: the first lines arrived while the job was still running.
    assert progress[0][1]
    assert progress[1][1]
    assert "no caps given" not in stderr  # caps were given
    times = [at for at, _, _ in progress]
    assert times == sorted(times)
    sent = [int(found["sent"]) for _, _, found in progress]
    assert sent == sorted(sent)  # monotonic
    assert sent[0] < total
    previous = 0
    for _, _, found in progress:
        sent_now, queued = int(found["sent"]), int(found["queued"])
        assert sent_now + int(found["failed"]) + int(found["uncertain"]) + queued == total
        # The rate is what was sent over the interval the line names.
        rate, over = float(found["rate"].replace(",", "")), float(found["over"])
        assert abs(rate * over - (sent_now - previous)) <= 0.05 * rate + 0.5
        if found["eta"] not in ("done",) and rate > 0:
            # The ETA is the queue at the recent pace (the caps allow more).
            assert abs(_seconds(found["eta"]) - queued / rate) <= 1
        previous = sent_now
    last = progress[-1][2]
    assert (int(last["sent"]), int(last["queued"]), last["eta"]) == (total, 0, "done")
    data = json.loads(summary.read_text())
    assert (data["sent"], data["failed"], data["uncertain"], data["exit_code"]) == (total, 0, 0, 0)
    assert data["sends_per_second"] > 0


def test_quiet_prints_the_summary_only_and_a_run_without_caps_warns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(3))
    with Served(Emulator(users={"alice": PASSWORD})) as served:
        env = served.env()
        quiet = CliRunner().invoke(app, ["bulk", str(path), "--quiet"], env=env)
        loud = CliRunner().invoke(app, ["bulk", str(path), "--progress-interval", "0.05"], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert "progress:" not in quiet.stdout
    assert re.search(r"sent\s+│\s+3\b", quiet.stdout)
    assert "sending 3 messages" not in quiet.stderr
    assert "no caps given" in quiet.stderr  # a warning stays, even quiet
    assert loud.exit_code == 0, loud.output
    assert "progress:" in loud.stdout  # CliRunner's stdout is not a terminal
    assert "warning: no caps given (--per-minute, --per-hour)" in loud.stderr


def test_a_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(1))
    result = CliRunner().invoke(app, ["bulk", str(path), "--log-level", "loud"])
    assert result.exit_code == 2
    assert "--log-level must be one of debug, info, warning, error" in result.stderr


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_a_slow_pace_shows_the_slow_pace_not_the_burst() -> None:
    # The job: 20 per minute; the first 20 went at 0.3 s, then one every 3 s.
    clock = FakeClock()
    progress = JobProgress(40, clock=clock)
    counts = Counts()
    clock.now = 0.3
    counts.sent = 20
    progress.sample(counts)
    for _ in range(20):
        clock.now += 3.0
        counts.sent += 1
        progress.sample(counts)
    assert progress.recent_rate(counts) == 1 / 3  # over the last 10 s
    progress.finish()
    assert progress.recent_rate(counts) == 40 / 60.3  # the job's average, not 324/s


def test_after_ctrl_c_there_is_no_eta_only_what_is_left() -> None:
    clock = FakeClock()
    progress = JobProgress(100, clock=clock)
    counts = Counts(sent=30)
    caps = LimiterState(
        windows=(WindowState(20, 60.0, 0),), queued=70, in_flight=2, paused_until=None
    )
    clock.now = 90.0
    assert progress.eta_text(counts, caps) == "0:03:30"  # 70 at 20 a minute
    progress.stopping = True
    assert progress.eta_text(counts, caps) == "stopping"
    assert "eta stopping, 70 not sent" in progress.line(counts, caps)
    progress.finish()
    assert progress.eta_text(counts, caps) == "stopped"
    assert "eta stopped, 70 not sent" in progress.line(counts, caps)


def test_the_eta_is_the_longer_of_the_caps_and_the_recent_pace() -> None:
    caps = LimiterState(
        windows=(WindowState(600, 60.0, 100), WindowState(1000, 3600.0, 900)),
        queued=0,
        in_flight=0,
        paused_until=2.0,
    )
    # 1,000 left: the hour's 900 free tokens leave 100 at 1000/h = 360 s, + the pause.
    assert eta_seconds(1000, caps, None) == 362.0
    assert eta_seconds(1000, caps, 1.0) == 1000.0  # the job keeps one a second
    assert eta_seconds(10, None, 2.0) == 5.0
    assert eta_seconds(10, None, None) is None
    assert eta_seconds(0, None, None) == 0.0


def _refused(n: int) -> RateLimitedError:
    return RateLimitedError(
        429, method="POST", url="https://api.test/sms", headers={}, body=b"", retry_after=n
    )


def test_messages_a_stop_failed_before_their_turn_are_no_sends_in_the_rates() -> None:
    # Ctrl-C after 10 sent and one refused by the server: the 39 waiting fail at once.
    clock = FakeClock()
    tally = _Tally(50)
    progress = JobProgress(50, clock=clock)
    clock.now = 2.0
    for n in range(10):
        tally.add(SendResult(Sms(f"+3361000{n:04d}", "hi"), Outcome.SENT, sent=SentSms(f"{n}")))
    tally.add(SendResult(Sms("+33610000010", "hi"), Outcome.FAILED, error=_refused(10)))
    progress.sample(tally.counts())
    stopped = VortextError("the bulk job stopped before this message was sent")
    for n in range(11, 50):
        tally.add(SendResult(Sms(f"+3361000{n:04d}", "hi"), Outcome.FAILED, error=stopped))
    clock.now = 2.2
    assert tally.counts().attempted == 11  # 10 sent, 1 refused: the server's outcomes
    assert progress.recent_rate(tally.counts()) == 11 / 2.2  # no jump at the stop
    progress.finish()
    assert "rate 5.00/s over 2.2 s" in progress.line(tally.counts(), None)


def test_the_last_line_counts_the_messages_other_hosts_handled() -> None:
    clock = FakeClock()
    progress = JobProgress(100, clock=clock)
    counts = Counts(sent=60, skipped=40)  # the other 40 were another host's
    clock.now = 10.0
    assert "queued 0" in progress.line(counts, None)
    progress.finish()
    assert progress.line(counts, None).endswith("eta done")


def test_an_unwritable_summary_json_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", numbered(3))
    for target in (tmp_path / "no-such-dir" / "s.json", tmp_path):
        with Served(Emulator(users={"alice": PASSWORD})) as served:
            args = ["bulk", str(path), "--summary-json", str(target)]
            result = CliRunner().invoke(app, args, env=served.env())
            assert result.exit_code == 2, result.output
            assert f"error: cannot write the summary {target}" in result.stderr
            assert served.emulator.stats.requests == 0
