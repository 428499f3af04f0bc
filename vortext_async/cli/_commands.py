"""The commands that talk to Vortext: ``status``, ``send``, ``get`` and ``bulk``."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.table import Table

from vortext_async import (
    JournalBusyError,
    JournalError,
    RateLimit,
    SendResult,
    Sms,
)

from ._app import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BaseUrl,
    JsonOutput,
    Password,
    Username,
    _call,
    _client,
    _describe_caps,
    _err,
    _escape,
    _fail,
    _out,
    app,
)
from ._display import (
    _bulk_job,
    _BulkOptions,
)
from ._input import (
    InputFormatError,
    count_records,
    detect_format,
    read_messages,
)
from ._progress import summary_json


@app.command()
def status(
    username: Username = None,
    password: Password = None,
    base_url: BaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Check that the service is up (GET /status)."""

    async def run() -> Any:
        async with _client(username, password, base_url) as client:
            return client.base_url, await client.status()

    url, answer = _call(run())
    if as_json:
        _out().print_json(data={"status": answer.status, **answer.extra})
        return
    table = Table(title=f"Vortext at {_escape(url)}", show_header=False)
    table.add_row("status", _escape(answer.status or "(not given)"))
    for name, value in answer.extra.items():
        if name != "status":
            table.add_row(_escape(name), _escape(_show(value)))
    _out().print(table)


@app.command()
def send(
    phone_number: Annotated[str, typer.Argument(help="Recipient, e.g. +33611272727.")],
    message: Annotated[str, typer.Argument(help="The text to send.")],
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            "-m",
            metavar="KEY=VALUE",
            help="Custom data kept with the SMS (repeat for several entries).",
        ),
    ] = None,
    username: Username = None,
    password: Password = None,
    base_url: BaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Send one SMS (POST /sms) and print its message id."""
    data = _metadata(metadata or [])

    async def run() -> Any:
        async with _client(username, password, base_url) as client:
            return await client.send_sms(phone_number, message, metadata=data)

    sent = _call(run())
    if as_json:
        _out().print_json(data={"messageId": sent.message_id, **sent.extra})
    else:
        _out().print(f"sent: message id [bold]{_escape(sent.message_id)}[/]")


@app.command()
def get(
    message_id: Annotated[str, typer.Argument(help="The message id `send` printed.")],
    username: Username = None,
    password: Password = None,
    base_url: BaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Show an SMS sent earlier, with its metadata (GET /sms/ID)."""

    async def run() -> Any:
        async with _client(username, password, base_url) as client:
            return await client.get_sms(message_id)

    detail = _call(run())
    if as_json:
        _out().print_json(
            data={
                "messageId": detail.message_id,
                "phoneNumber": detail.phone_number,
                "message": detail.message,
                "metadata": detail.metadata,
                **detail.extra,
            }
        )
        return
    table = Table(title=f"SMS {_escape(str(detail.message_id))}", show_header=False)
    table.add_row("phone number", _escape(str(detail.phone_number)))
    table.add_row("message", _escape(str(detail.message)))
    table.add_row("metadata", _escape(_show(detail.metadata)))
    for name, value in detail.extra.items():
        table.add_row(_escape(name), _escape(_show(value)))
    _out().print(table)


def _journal_problem(error: Exception, journal: str | None) -> str:
    text = str(error)
    cannot_open = isinstance(error, OSError) or "unable to open" in text
    if journal is not None and "://" not in journal and cannot_open:
        path = Path(journal)
        if path.is_dir():
            return "it is a folder, not a file"
        if not path.parent.is_dir():
            return f"no such folder: {path.parent}"
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        return f"{text} (is it a journal of vortext bulk? give another --journal path)"
    if "readonly" in text or "read-only" in text:
        return f"{text} (it must be writable: it records every send)"
    return text


def _metadata(entries: list[str]) -> dict[str, str] | None:
    data: dict[str, str] = {}
    for entry in entries:
        key, equals, value = entry.partition("=")
        if not equals or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {entry!r}", param_hint="--metadata")
        data[key] = value
    return data or None


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@app.command()
def bulk(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="CSV with a header, or JSON Lines ('-' reads standard input)."
        ),
    ],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--format", metavar="csv|jsonl", help="File format (default: from the extension)."
        ),
    ] = None,
    per_minute: Annotated[
        int | None, typer.Option(min=1, help="The account's cap of sends per minute.")
    ] = None,
    per_hour: Annotated[
        int | None, typer.Option(min=1, help="The account's cap of sends per hour.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Sends in flight at most.")] = 64,
    journal: Annotated[
        str | None,
        typer.Option(
            metavar="PATH|URL",
            help="A SQLite file, or a postgresql:// URL that several hosts share: rerun the "
            "same command with it to resume without resending.",
        ),
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            show_default=False,
            help="The job's name in the journal (default: FILE's name). Hosts sharing a "
            "PostgreSQL journal with the same job split its messages between them.",
        ),
    ] = None,
    replace_changed: Annotated[
        bool,
        typer.Option(
            "--replace-changed",
            help="With --journal: a changed message may take the key of one that failed "
            "(never of one sent or uncertain).",
        ),
    ] = False,
    resend_uncertain: Annotated[
        bool,
        typer.Option(
            "--resend-uncertain",
            help="With --journal: also resend what an earlier run left uncertain "
            "(may send those SMS twice).",
        ),
    ] = False,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds Ctrl-C lets sends in flight finish.")
    ] = 10.0,
    rate_limit_patience: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="A message refused for the rate limit (429) waits and is sent again, "
            "until the account has refused every send for this long; then the messages "
            "left fail unsent (0: a refusal is final).",
        ),
    ] = 7200.0,
    report: Annotated[
        Path | None,
        typer.Option(help="Write one CSV line per message: key, outcome, message id, error."),
    ] = None,
    progress_interval: Annotated[
        float,
        typer.Option(
            min=0.01,
            metavar="SECONDS",
            help="When stdout is not a terminal: one progress line every SECONDS.",
        ),
    ] = 10.0,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress, no problem lines: the summary only."),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            metavar="debug|info|warning|error",
            help="The library's log lines on stderr from this level (default: warning; "
            "--quiet: error).",
        ),
    ] = None,
    summary_json_path: Annotated[
        Path | None,
        typer.Option("--summary-json", metavar="PATH", help="Also write the summary as JSON."),
    ] = None,
    username: Username = None,
    password: Password = None,
    base_url: BaseUrl = None,
) -> None:
    """Send every message of FILE at the account's pace, then print a summary.

    CSV: a header naming [bold]phone_number[/] and [bold]message[/], an optional
    [bold]key[/] (the message's id for the journal and the report), and any other
    columns as metadata.  JSON Lines: one object per line with phone_number, message,
    optional metadata (an object) and key.  A bad line is reported with its number
    and the job goes on.  Exit code 0 only when every message was sent.

    When stdout is not a terminal (a pipe, a log file, systemd), a plain progress
    line every --progress-interval seconds: sent, failed, uncertain, queued, the rate
    over the interval and the time left from the caps.
    """
    try:
        fmt = detect_format(file, input_format)
    except InputFormatError as error:
        _fail(str(error), EXIT_USAGE)
    _log_to_stderr(log_level or ("error" if quiet else "warning"))
    rate_limit: RateLimit | None = None
    if per_minute is not None or per_hour is not None:
        rate_limit = RateLimit(per_minute=per_minute, per_hour=per_hour)
    client = _client(username, password, base_url, rate_limit=rate_limit)
    source = "standard input" if file == "-" else file
    total: int | None = None
    if file != "-":
        try:
            with open(file, "rb") as counted:
                total = count_records(counted, fmt)
        except OSError as error:
            _fail(f"cannot read {file}: {error.strerror}", EXIT_USAGE)
    caps = "no caps given" if rate_limit is None else _describe_caps(rate_limit)
    if not quiet:
        _err().print(
            f"sending {total if total is not None else 'the'} messages of {_escape(source)} "
            f"({caps}, concurrency {concurrency}); Ctrl-C stops gracefully"
        )
    if rate_limit is None:
        _err().print(
            "[yellow]warning:[/] no caps given (--per-minute, --per-hour): the job starts "
            "unpaced and learns a pace from the server's refusals (429); give the account's "
            "caps to send without refusals"
        )

    def messages(on_bad_line: Callable[[SendResult], object]) -> Iterator[Sms]:
        stream: IO[bytes] = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
        try:
            yield from read_messages(stream, fmt, source=source, on_bad_line=on_bad_line)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    if resend_uncertain and journal is None:
        _fail("--resend-uncertain needs --journal (it applies to a resumed job)", EXIT_USAGE)
    if replace_changed and journal is None:
        _fail("--replace-changed needs --journal (it applies to a resumed job)", EXIT_USAGE)
    if job is not None and journal is None:
        _fail("--job needs --journal (it names the job in the journal)", EXIT_USAGE)
    options = _BulkOptions(
        concurrency=concurrency,
        journal=journal,
        job=job if job is not None else default_job(file),
        grace=grace,
        rate_limit_patience=rate_limit_patience,
        report=report,
        resend_uncertain=resend_uncertain,
        replace_changed=replace_changed,
        progress_interval=progress_interval,
        quiet=quiet,
    )
    try:
        tally = asyncio.run(_bulk_job(client, messages, total=total, options=options))
    except InputFormatError as error:
        _fail(str(error), EXIT_USAGE)
    except sqlite3.Error as error:  # the journal is the only SQLite database
        problem = _journal_problem(error, journal)
        _fail(f"cannot use the journal {journal}: {problem}", EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted by Ctrl-C", EXIT_INTERRUPTED)
    if isinstance(tally.journal_error, JournalBusyError):
        _fail(str(tally.journal_error), EXIT_USAGE)  # nothing was read or sent
    if isinstance(tally.journal_error, JournalError) and isinstance(
        tally.journal_error.__cause__, OSError
    ):  # its lock file could not be made: nothing was read or sent
        problem = _journal_problem(tally.journal_error.__cause__, journal)
        _fail(f"cannot use the journal {journal}: {problem}", EXIT_USAGE)
    tally.print_summary(_out(), journal=journal, job=options.job)
    if summary_json_path is not None:
        try:
            summary_json(summary_json_path, tally.as_json())
        except OSError as error:
            _fail(f"cannot write the summary {summary_json_path}: {error.strerror}", EXIT_USAGE)
    if tally.journal_error is not None:
        _fail(str(tally.journal_error))
    raise typer.Exit(tally.exit_code())


def default_job(file: str) -> str:
    """The CLI's job name for FILE: its name (``default`` for standard input)."""
    return "default" if file == "-" else Path(file).name


_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LOG_LEVELS["error"] = logging.ERROR


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` (the live bar redirects it while it runs)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _log_to_stderr(level_name: str) -> None:
    """The library's log lines on stderr, readable, from ``level_name`` up."""
    level = _LOG_LEVELS.get(level_name.lower())
    if level is None:
        _fail(
            f"--log-level must be one of {', '.join(_LOG_LEVELS)}, not {level_name!r}", EXIT_USAGE
        )
    package = logging.getLogger("vortext_async")
    package.setLevel(level)
    if not any(isinstance(handler, _StderrHandler) for handler in package.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
    for installed in package.handlers:
        if isinstance(installed, _StderrHandler):
            installed.setLevel(level)
