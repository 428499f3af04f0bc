"""``vortext journal``: a bulk journal's jobs and their counts (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Annotated

import typer
from rich.table import Table

from vortext_async import (
    ConfigurationError,
    JournalError,
    JournalStatus,
    journal_jobs,
    journal_status,
)

from ._app import EXIT_USAGE, JsonOutput, _escape, _fail, _out, app

_STATES = ("sent", "failed", "uncertain", "attempting")


@app.command()
def journal(
    journal: Annotated[
        str,
        typer.Argument(
            metavar="PATH|URL", help="The journal: a SQLite file or a postgresql:// URL."
        ),
    ],
    job: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            show_default=False,
            help="One job: its counts and its runs (default: every job's counts). The CLI "
            "names a job after its input file.",
        ),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Print what a bulk journal holds: messages per state, for each job or for one.

    [bold]attempting[/] messages are being sent by a running host, or were left by a
    host that died: a rerun reports those UNCERTAIN and does not resend them.  Read
    only: safe while jobs run.
    """
    try:
        if job is None:
            jobs = asyncio.run(journal_jobs(journal))
        else:
            status = asyncio.run(journal_status(journal, job))
    except (ConfigurationError, JournalError) as error:  # missing, not a journal, down
        _fail(str(error), EXIT_USAGE)
    if job is not None and not status.total and not status.runs:
        _fail(_no_such_job(journal, job), EXIT_USAGE)
    out = _out()
    if job is None:
        if as_json:
            out.print_json(data={"jobs": jobs})
            return
        table = Table(title="Jobs in the journal")
        table.add_column("job")
        for state in _STATES:
            table.add_column(state, justify="right")
        for name, counts in jobs.items():
            table.add_row(_escape(name), *(f"{counts.get(state, 0):,}" for state in _STATES))
        out.print(table if jobs else "no job in this journal yet")
        return
    _print_status(status, as_json=as_json)


def _no_such_job(journal: str, job: str) -> str:
    """Why ``--job`` names nothing here, and which jobs the journal does hold."""
    try:
        names = sorted(asyncio.run(journal_jobs(journal)))
    except (ConfigurationError, JournalError):
        names = []
    held = ", ".join(repr(name) for name in names) if names else "none"
    return f"the journal holds no job {job!r} (its jobs: {held})"


def _print_status(status: JournalStatus, *, as_json: bool) -> None:
    out = _out()
    if as_json:
        out.print_json(
            data={
                "journal": status.journal,
                "job": status.job,
                "counts": status.counts,
                "total": status.total,
                "runs": [
                    {
                        "run": run.run,
                        "host": run.host,
                        "pid": run.pid,
                        "started_at": run.started_at,
                        "live": run.live,
                        "attempting": run.attempting,
                    }
                    for run in status.runs
                ],
            }
        )
        return
    counts = Table(title=f"Job {_escape(status.job)!r}", show_header=False)
    for state in _STATES:
        counts.add_row(state, f"{status.counts.get(state, 0):,}")
    counts.add_row("[bold]total[/]", f"{status.total:,}")
    out.print(counts)
    if not status.runs:
        out.print("no run of this job in the journal")
        return
    runs = Table(title="Runs")
    for column in ("run", "host", "pid", "started (UTC)", "running", "attempting"):
        runs.add_column(column, justify="right" if column in ("run", "pid") else "left")
    for run in status.runs:
        started = datetime.datetime.fromtimestamp(run.started_at, datetime.UTC)
        live = {True: "yes", False: "no", None: "?"}[run.live]
        runs.add_row(
            str(run.run),
            _escape(run.host or "?"),
            str(run.pid or "?"),
            started.strftime("%Y-%m-%d %H:%M:%S"),
            live,
            f"{run.attempting:,}",
        )
    out.print(runs)
