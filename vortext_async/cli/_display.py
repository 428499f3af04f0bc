"""A bulk job on the terminal: the tally, progress and pacing, the report, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from vortext_async import (
    BulkJob,
    JournalError,
    Outcome,
    SendResult,
    Sms,
    VortextClient,
)

from ._app import (
    _SHOWN_PROBLEMS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _err,
    _escape,
    _fail,
    _seconds,
)
from ._input import (
    BadLineError,
)
from ._progress import Counts, JobProgress, rate_text


@attrs.frozen
class _BulkOptions:
    concurrency: int
    grace: float
    rate_limit_patience: float = 7200.0
    """Seconds the job resends messages refused for the rate limit (see ``send_bulk``)."""
    journal: str | None = None
    job: str = "default"
    report: Path | None = None
    resend_uncertain: bool = False
    replace_changed: bool = False
    show_pacing: bool = False
    progress_interval: float = 10.0
    """Seconds between two plain progress lines (stdout not a terminal)."""
    quiet: bool = False
    """No bar, no progress lines, no problem lines: the summary only."""
    plain: bool | None = None
    """Plain progress lines on stdout; None: when stdout is not a terminal."""


@attrs.define
class _Tally:
    """What became of each message, counted by the command itself."""

    total: int | None
    sent: int = 0
    resumed: int = 0
    failed: int = 0
    bad_lines: int = 0
    uncertain: int = 0
    interrupted: bool = False
    duration: float = 0.0
    rate: float = 0.0
    shown: int = 0
    skipped: int = 0
    journal_error: JournalError | None = None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.uncertain

    def counts(self) -> Counts:
        return Counts(self.sent, self.failed, self.uncertain, self.resumed, self.bad_lines)

    @property
    def not_attempted(self) -> int | None:
        if self.total is None:
            return None
        return max(self.total - self.done - self.skipped, 0)

    def add(self, result: SendResult) -> None:
        self.resumed += result.resumed
        if result.outcome is Outcome.SENT:
            self.sent += 1
        elif result.outcome is Outcome.FAILED:
            self.failed += 1
            self.bad_lines += isinstance(result.error, BadLineError)
        else:
            self.uncertain += 1

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        everything = self.failed == 0 and self.uncertain == 0 and not self.not_attempted
        return EXIT_OK if everything else EXIT_FAILED

    def table(self) -> Table:
        title = "Summary" + (" (stopped by Ctrl-C)" if self.interrupted else "")
        table = Table(title=title, show_header=False)
        table.add_row("[green]sent[/]", f"{self.sent:,}")
        failed = f"{self.failed:,}"
        if self.bad_lines:
            failed += f" ({self.bad_lines:,} bad input lines)"
        table.add_row("[red]failed[/]", failed)
        table.add_row("[yellow]uncertain[/]", f"{self.uncertain:,}")
        if self.not_attempted:
            table.add_row("not attempted", f"{self.not_attempted:,}")
        if self.resumed:
            table.add_row("taken from the journal", f"{self.resumed:,}")
        if self.skipped:
            table.add_row("handled by other hosts", f"{self.skipped:,}")
        table.add_row("duration", f"{self.duration:.1f} s")
        table.add_row("sends per second", rate_text(self.rate))
        return table

    def as_json(self) -> dict[str, object]:
        """The summary for ``--summary-json``."""
        return {
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "uncertain": self.uncertain,
            "not_attempted": self.not_attempted,
            "resumed": self.resumed,
            "handled_by_other_hosts": self.skipped,
            "bad_lines": self.bad_lines,
            "interrupted": self.interrupted,
            "duration_seconds": round(self.duration, 3),
            "sends_per_second": round(self.rate, 3),
            "exit_code": self.exit_code(),
        }

    def print_summary(self, console: Console, *, journal: str | None, job: str) -> None:
        console.print(self.table())
        if self.uncertain:
            console.print(
                f"[yellow]{self.uncertain:,} message(s) may or may not have been sent: "
                "they were not resent.[/]"
            )
        if journal is not None and (self.interrupted or self.done != self.sent):
            where = "PostgreSQL" if "://" in journal else _escape(journal)  # no URL: password
            console.print(
                f"journal: {where}, job {_escape(job)!r} (run the same command again to resume)"
            )


async def _bulk_job(
    client: VortextClient,
    messages: Callable[[Callable[[SendResult], object]], Iterable[Sms]],
    *,
    total: int | None,
    options: _BulkOptions,
    title: str = "sending",
) -> _Tally:
    """Run one bulk job with a live bar; Ctrl-C stops it gracefully (twice: at once).

    On a terminal (stderr), a live bar; when stdout is not a terminal, one plain,
    flushed line every ``options.progress_interval`` seconds on stdout; ``quiet``:
    neither.
    """
    err = _err()
    tally = _Tally(total)
    tracker = JobProgress(total)
    bad_lines: deque[SendResult] = deque()
    plain = not options.quiet and (
        options.plain if options.plain is not None else not sys.stdout.isatty()
    )
    show_bar = not options.quiet and err.is_terminal
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(tracker, tally),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        _EtaColumn(tracker, tally, client),
        console=err,
        transient=False,
        auto_refresh=False,
    )
    task_id = progress.add_task(title, total=total)
    pacing = _Pacing(client) if options.show_pacing else None
    report = _Report.open(options.report)

    def on_result(result: SendResult) -> None:
        tally.add(result)
        progress.advance(task_id)
        report.write(result)
        if result.outcome is not Outcome.SENT and not options.quiet:
            _show_problem(progress.console, tally, result)

    def progress_line() -> None:
        line = tracker.line(tally.counts(), client.limiter.state())
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def job_results() -> None:
        job = client.send_bulk(
            messages(bad_lines.append),
            concurrency=options.concurrency,
            journal=options.journal,
            job=options.job,
            grace=options.grace,
            rate_limit_patience=options.rate_limit_patience,
            resend_uncertain=options.resend_uncertain,
            replace_changed=options.replace_changed,
        )
        jobs.append(job)
        stopper = _Stopper(client, job, err, options.grace, tracker)
        with stopper.installed():
            try:
                async for result in job:
                    while bad_lines:
                        on_result(bad_lines.popleft())
                    on_result(result)
            except JournalError as error:  # shown after the summary; busy: nothing sent
                tally.journal_error = error
            finally:
                while bad_lines:
                    on_result(bad_lines.popleft())
                await job.aclose()
                tally.interrupted = stopper.stopping
                summary = job.summary
                tally.duration, tally.rate = summary.duration, summary.rate
                tally.skipped = summary.skipped

    jobs: list[BulkJob] = []
    renderables: list[RenderableType] = [progress]
    if pacing is not None:
        renderables.append(pacing)
    interval = options.progress_interval
    try:
        async with client, _live(err, Group(*renderables), show=show_bar) as refresh:
            runner = asyncio.ensure_future(job_results())
            next_line = time.monotonic() + interval
            while not runner.done():
                timeout = 0.1
                if plain:
                    timeout = min(timeout, max(0.0, next_line - time.monotonic()))
                await asyncio.wait({runner}, timeout=timeout)
                tracker.sample(tally.counts())
                if plain and time.monotonic() >= next_line and not runner.done():
                    progress_line()
                    next_line += interval * max(
                        1, math.ceil((time.monotonic() - next_line) / interval)
                    )
                if pacing is not None:
                    pacing.update()
                if jobs and jobs[0].summary.skipped:  # other hosts' messages count as done
                    progress.update(task_id, completed=tally.done + jobs[0].summary.skipped)
                refresh()
            await runner
            tracker.finish()
            refresh()
        if plain:
            progress_line()
    finally:
        report.close()
    return tally


def _show_problem(console: Console, tally: _Tally, result: SendResult) -> None:
    tally.shown += 1
    if tally.shown > _SHOWN_PROBLEMS:
        if tally.shown == _SHOWN_PROBLEMS + 1:
            console.print("[dim]... further problems are counted, not shown (see --report)[/]")
        return
    label = "[red]failed[/]" if result.outcome is Outcome.FAILED else "[yellow]uncertain[/]"
    if isinstance(result.error, BadLineError):
        console.print(f"{label} {_escape(str(result.error))}")
        return
    who = result.sms.key or result.sms.phone_number
    console.print(f"{label} {_escape(str(who))}: {_escape(str(result.error))}")


@contextlib.asynccontextmanager
async def _live(
    console: Console, renderable: RenderableType, *, show: bool = True
) -> AsyncIterator[Callable[[], None]]:
    """A live display refreshed from the event loop (no thread reads our state)."""
    from rich.live import Live

    if not show:
        yield lambda: None
        return

    try:
        with Live(renderable, console=console, auto_refresh=False, transient=False) as live:
            yield live.refresh
    finally:
        if not console.is_terminal:
            console.line()  # a file or pipe got the final state without its last newline


class _Stopper:
    """Ctrl-C during a job.

    The first stops the job: no more input is read, sends in flight get ``grace``
    seconds, the iteration ends with their results.  The second closes the client
    at once: sends still unanswered end UNCERTAIN (never resent by a rerun).  A
    third one interrupts the process the usual way.
    """

    def __init__(
        self,
        client: VortextClient,
        job: Any,
        console: Console,
        grace: float,
        tracker: JobProgress | None = None,
    ) -> None:
        self._tracker = tracker
        self._client = client
        self._job = job
        self._console = console
        self._grace = grace
        self._tasks: set[asyncio.Future[None]] = set()
        self._presses = 0

    @property
    def stopping(self) -> bool:
        return self._presses > 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _on_sigint(self) -> None:
        self._presses += 1
        if self._tracker is not None:
            self._tracker.stopping = True
        if self._presses == 1:
            self._console.print(
                f"[yellow]stopping: no new sends; those in flight get up to {self._grace:g} s "
                "(Ctrl-C again to cut them short)[/]"
            )
            self._spawn(self._job.aclose())
        else:
            self._console.print(
                "[yellow]cutting the sends in flight short: they are reported uncertain[/]"
            )
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
            self._spawn(self._client.aclose(grace=0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _RateColumn(ProgressColumn):
    """Messages sent per second over the last 10 s; the job's average once it is over."""

    def __init__(self, tracker: JobProgress, tally: _Tally) -> None:
        super().__init__()
        self._tracker = tracker
        self._tally = tally

    def render(self, task: Task) -> Text:
        return Text(rate_text(self._tracker.recent_rate(self._tally.counts())), style="cyan")


class _EtaColumn(ProgressColumn):
    """Time left from the caps; "stopping" after Ctrl-C, "done" or "stopped" at the end."""

    def __init__(self, tracker: JobProgress, tally: _Tally, client: VortextClient) -> None:
        super().__init__()
        self._tracker = tracker
        self._tally = tally
        self._client = client

    def render(self, task: Task) -> Text:
        state = self._client.limiter.state()
        return Text(self._tracker.eta_text(self._tally.counts(), state), style="cyan")


class _Pacing:
    """One line under the bar: the limiter's tokens, waiters and sends in flight."""

    def __init__(self, client: VortextClient) -> None:
        self._client = client
        self._text = Text("")

    def update(self) -> None:
        state = self._client.limiter.state()
        parts = [
            f"{window.tokens_left}/{window.max_sends} per {_seconds(window.seconds)}"
            for window in state.windows
        ]
        parts.append(f"{state.queued} waiting")
        parts.append(f"{state.in_flight} in flight")
        if state.paused_until:
            parts.append(f"paused {state.paused_until:.1f} s (429)")
        self._text = Text("limiter tokens: " + " · ".join(parts), style="dim")

    def __rich__(self) -> Text:
        return self._text


def _open_private(path: Path) -> IO[str]:
    """``path`` opened for writing; created readable by its owner only (0600, whatever the
    umask: it holds phone numbers).  An existing file keeps its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return open(fd, "w", newline="", encoding="utf-8")


class _Report:
    """The optional per-message CSV report."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._writer = csv.writer(stream) if stream is not None else None
        if self._writer is not None:
            self._writer.writerow(["key", "phone_number", "outcome", "message_id", "error"])

    @classmethod
    def open(cls, path: Path | None) -> _Report:
        if path is None:
            return cls(None)
        try:
            return cls(_open_private(path))
        except OSError as error:
            _fail(f"cannot write the report {path}: {error.strerror}", EXIT_USAGE)

    def write(self, result: SendResult) -> None:
        if self._writer is not None:
            error = "" if result.error is None else str(result.error)
            self._writer.writerow(
                [
                    result.sms.key or "",
                    result.sms.phone_number,
                    result.outcome.value,
                    result.message_id or "",
                    error,
                ]
            )

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
