"""The ``vortext`` command line (extra ``cli``: typer, rich, uvicorn).

``vortext demo`` runs a whole bulk job against an in-process emulator, with no
account; ``status``, ``send``, ``get`` and ``bulk`` talk to Vortext (or to any
emulator) with the credentials of ``VORTEXT_USERNAME`` / ``VORTEXT_PASSWORD`` (or
``--username`` / ``--password``), which are never printed.  ``vortext emulator``
serves the emulator on a socket.

Exit codes: 0 success (for ``bulk`` and ``demo``: every message was sent); 1 a
call failed, or some messages were not sent; 2 bad usage, settings or input
file; 3 ``send`` may or may not have been accepted (do not blindly retry);
130 ``bulk`` stopped by Ctrl-C (after its summary).

The client is used through its public API only, like any application would.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Final, NoReturn

import attrs
import typer
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
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from vortext_async import (
    AuthenticationError,
    ConfigurationError,
    Outcome,
    RateLimit,
    SendResult,
    Sms,
    UncertainSendError,
    VortextClient,
    VortextError,
    __version__,
)

from ._input import (
    BadLineError,
    InputFormatError,
    count_records,
    detect_format,
    read_messages,
)

__all__ = ["app", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNCERTAIN: Final = 3
EXIT_INTERRUPTED: Final = 130

#: How many problem lines (bad input, failed sends) are printed before going quiet.
_SHOWN_PROBLEMS: Final = 20

app = typer.Typer(
    name="vortext",
    help="Send SMS through Vortext, the SMS gateway of cegedim.cloud, or try it on an emulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vortext-async {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Send SMS through Vortext, the SMS gateway of cegedim.cloud, or try it on an emulator.

    Start with [bold]vortext demo[/]: no account needed.
    """


# -- credentials -------------------------------------------------------------------

Username = Annotated[
    str | None,
    typer.Option(
        "--username",
        "-u",
        envvar="VORTEXT_USERNAME",
        show_envvar=True,
        show_default=False,
        help="Account name.",
    ),
]
Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="VORTEXT_PASSWORD",
        show_envvar=True,
        show_default=False,
        help="Account password; prefer the environment variable (a flag shows in `ps`).",
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="VORTEXT_BASE_URL",
        show_envvar=True,
        show_default=False,
        help="API base URL (default: the internet endpoint), e.g. an emulator's.",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


def _client(
    username: str | None,
    password: str | None,
    base_url: str | None,
    **options: Any,
) -> VortextClient:
    if not username:
        _fail("no username: pass --username or set VORTEXT_USERNAME", EXIT_USAGE)
    if not password:
        _fail("no password: set VORTEXT_PASSWORD (or pass --password)", EXIT_USAGE)
    try:
        return VortextClient(username, password, base_url=base_url, **options)
    except ConfigurationError as error:
        _fail(str(error), EXIT_USAGE)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    return Console(highlight=False)


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    _err().print(f"[bold red]error:[/] {_escape(message)}")
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _call(coro: Any) -> Any:
    """Run one API call; a VortextError becomes a short message and exit code."""
    try:
        return asyncio.run(coro)
    except UncertainSendError as error:
        _fail(f"{error}; it was not resent", EXIT_UNCERTAIN)
    except ConfigurationError as error:
        _fail(str(error), EXIT_USAGE)
    except AuthenticationError as error:
        _fail(f"{error}\n(check VORTEXT_USERNAME and VORTEXT_PASSWORD, or --username/--password)")
    except VortextError as error:
        _fail(str(error))


# -- status, send, get -------------------------------------------------------------


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
    table = Table(title=f"Vortext at {url}", show_header=False)
    table.add_row("status", answer.status or "(not given)")
    for name, value in answer.extra.items():
        if name != "status":
            table.add_row(name, _show(value))
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
    table = Table(title=f"SMS {detail.message_id}", show_header=False)
    table.add_row("phone number", detail.phone_number)
    table.add_row("message", detail.message)
    table.add_row("metadata", _show(detail.metadata))
    for name, value in detail.extra.items():
        table.add_row(name, _show(value))
    _out().print(table)


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


# -- bulk ------------------------------------------------------------------------


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
        Path | None,
        typer.Option(
            help="SQLite journal: rerun the same command with it to resume without resending."
        ),
    ] = None,
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
    report: Annotated[
        Path | None,
        typer.Option(help="Write one CSV line per message: key, outcome, message id, error."),
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
    """
    try:
        fmt = detect_format(file, input_format)
    except InputFormatError as error:
        _fail(str(error), EXIT_USAGE)
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
    caps = _describe_caps(rate_limit)
    _err().print(
        f"sending {total if total is not None else 'the'} messages of {_escape(source)} "
        f"({caps}, concurrency {concurrency}); Ctrl-C stops gracefully"
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
    options = _BulkOptions(
        concurrency=concurrency,
        journal=journal,
        grace=grace,
        report=report,
        resend_uncertain=resend_uncertain,
    )
    try:
        tally = asyncio.run(_bulk_job(client, messages, total=total, options=options))
    except InputFormatError as error:
        _fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted by Ctrl-C", EXIT_INTERRUPTED)
    tally.print_summary(_out(), journal=journal)
    raise typer.Exit(tally.exit_code())


@attrs.frozen
class _BulkOptions:
    concurrency: int
    grace: float
    journal: Path | None = None
    report: Path | None = None
    resend_uncertain: bool = False
    show_pacing: bool = False


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

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.uncertain

    @property
    def not_attempted(self) -> int | None:
        return None if self.total is None else max(self.total - self.done, 0)

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
        table.add_row("duration", f"{self.duration:.1f} s")
        table.add_row("sends per second", f"{self.rate:,.1f}")
        return table

    def print_summary(self, console: Console, *, journal: Path | None) -> None:
        console.print(self.table())
        if self.uncertain:
            console.print(
                f"[yellow]{self.uncertain:,} message(s) may or may not have been sent: "
                "they were not resent.[/]"
            )
        if journal is not None and (self.interrupted or self.done != self.sent):
            console.print(f"journal: {journal} (run the same command again to resume)")


async def _bulk_job(
    client: VortextClient,
    messages: Callable[[Callable[[SendResult], object]], Iterable[Sms]],
    *,
    total: int | None,
    options: _BulkOptions,
    title: str = "sending",
) -> _Tally:
    """Run one bulk job with a live bar; Ctrl-C stops it gracefully (twice: at once)."""
    err = _err()
    tally = _Tally(total)
    bad_lines: deque[SendResult] = deque()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
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
        if result.outcome is not Outcome.SENT:
            _show_problem(progress.console, tally, result)

    async def job_results() -> None:
        job = client.send_bulk(
            messages(bad_lines.append),
            concurrency=options.concurrency,
            journal=options.journal,
            grace=options.grace,
            resend_uncertain=options.resend_uncertain,
        )
        stopper = _Stopper(client, job, err, options.grace)
        with stopper.installed():
            try:
                async for result in job:
                    while bad_lines:
                        on_result(bad_lines.popleft())
                    on_result(result)
            finally:
                while bad_lines:
                    on_result(bad_lines.popleft())
                await job.aclose()
                tally.interrupted = stopper.stopping
                summary = job.summary
                tally.duration, tally.rate = summary.duration, summary.rate

    renderables: list[RenderableType] = [progress]
    if pacing is not None:
        renderables.append(pacing)
    try:
        async with client, _live(err, Group(*renderables)) as refresh:
            runner = asyncio.ensure_future(job_results())
            while not runner.done():
                await asyncio.wait({runner}, timeout=0.1)
                if pacing is not None:
                    pacing.update()
                refresh()
            await runner
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
async def _live(console: Console, renderable: RenderableType) -> AsyncIterator[Callable[[], None]]:
    """A live display refreshed from the event loop (no thread reads our state)."""
    from rich.live import Live

    with Live(renderable, console=console, auto_refresh=False, transient=False) as live:
        yield live.refresh
    if not console.is_terminal:
        console.line()  # a file or pipe got the final state without its last newline


class _Stopper:
    """Ctrl-C during a job.

    The first stops the job: no more input is read, sends in flight get ``grace``
    seconds, the iteration ends with their results.  The second closes the client
    at once: sends still unanswered end UNCERTAIN (never resent by a rerun).  A
    third one interrupts the process the usual way.
    """

    def __init__(self, client: VortextClient, job: Any, console: Console, grace: float) -> None:
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
    """Messages per second over the bar's recent history."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- /s" if speed is None else f"{speed:,.0f}/s", style="cyan")


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
            return cls(open(path, "w", newline="", encoding="utf-8"))
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


def _seconds(seconds: float) -> str:
    if seconds == 60:
        return "minute"
    if seconds == 3600:
        return "hour"
    return f"{seconds:g} s"


def _describe_caps(rate_limit: RateLimit) -> str:
    windows = rate_limit.all_windows()
    if not windows:
        return "no rate limit"
    return ", ".join(f"at most {n:,} per {_seconds(w)}" for n, w in windows)


# -- emulator ----------------------------------------------------------------------


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, help="Port (0: a free one).")] = 8025,
    per_minute: Annotated[
        int | None, typer.Option(min=1, help="Cap of sends per minute (answered 429 above).")
    ] = None,
    per_hour: Annotated[int | None, typer.Option(min=1, help="Cap of sends per hour.")] = None,
    window: Annotated[
        list[str] | None,
        typer.Option(metavar="N/SECONDS", help="Another cap: at most N sends in any SECONDS."),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME:PASSWORD", help="An account (default demo:demo)."),
    ] = None,
    latency: Annotated[float, typer.Option(min=0, help="Seconds added to each answer.")] = 0.0,
    error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of requests answered 5xx.")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of connections dropped after processing.")
    ] = 0.0,
    push_url: Annotated[
        str | None, typer.Option(help="URL that receives PUSH replies to accepted sends.")
    ] = None,
    reply_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of accepted sends answered by a reply.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for ids and faults.")] = None,
) -> None:
    """Serve the Vortext emulator until Ctrl-C (for tests and trials, no account)."""
    from vortext_async.emulator import Emulator, run_emulator

    windows: list[tuple[int, float]] = []
    if per_minute is not None:
        windows.append((per_minute, 60.0))
    if per_hour is not None:
        windows.append((per_hour, 3600.0))
    windows.extend(_window(text) for text in window or [])
    users = dict(_user(text) for text in user or ["demo:demo"])
    try:
        app_ = Emulator(
            users=users,
            windows=windows,
            latency=latency,
            error_rate=error_rate,
            drop_rate=drop_rate,
            push_url=push_url,
            reply_rate=reply_rate,
            seed=seed,
        )
    except ValueError as error:
        _fail(str(error), EXIT_USAGE)
    err = _err()

    def ready(url: str) -> None:
        caps = ", ".join(f"{n:,} per {_seconds(w)}" for n, w in windows) or "none"
        err.print(f"Vortext emulator listening on {url} (caps: {caps}); Ctrl-C stops it")
        if users == {"demo": "demo"}:
            err.print(
                f"  export VORTEXT_BASE_URL={url} VORTEXT_USERNAME=demo VORTEXT_PASSWORD=demo"
            )
        else:
            err.print(f"  accounts: {', '.join(sorted(users))}")

    try:
        run_emulator(app_, host=host, port=port, on_ready=ready)
    except OSError as error:
        _fail(f"cannot listen on {host}:{port}: {error.strerror}", EXIT_USAGE)


def _window(text: str) -> tuple[int, float]:
    count, slash, seconds = text.partition("/")
    try:
        window = (int(count), float(seconds))
    except ValueError:
        window = (0, 0.0)
    if not slash or window[0] < 1 or not window[1] > 0:
        raise typer.BadParameter(f"expected N/SECONDS such as 10/1.5, got {text!r}")
    return window


def _user(text: str) -> tuple[str, str]:
    name, colon, password = text.partition(":")
    if not colon or not name or not password:
        raise typer.BadParameter("expected NAME:PASSWORD", param_hint="--user")
    return name, password


# -- demo --------------------------------------------------------------------------

#: The demo's caps: two rolling windows, a short one that smooths bursts and a longer
#: one, like an account's per-minute and per-hour caps with time scaled down.
DEMO_WINDOWS: Final = (0.25, 1.0)
#: Each token comes back W after its send was *answered* (the limiter's rule), so the
#: real pace is N / (W + round trip), below the caps' nominal N / W: the caps are set
#: this much above the wanted pace so the job takes about the wanted time.
DEMO_HEADROOM: Final = 1.25


def demo_windows(messages: int, seconds: float) -> tuple[tuple[int, float], ...]:
    """Caps that let ``messages`` sends through in about ``seconds``."""
    rate = messages / seconds * DEMO_HEADROOM
    return tuple((max(1, round(rate * width)), width) for width in DEMO_WINDOWS)


@app.command()
def demo(
    messages: Annotated[int, typer.Option(min=1, help="How many messages to send.")] = 3000,
    seconds: Annotated[
        float, typer.Option(min=0.1, help="Target duration; the caps are scaled to it.")
    ] = 15.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Sends in flight at most.")] = 64,
) -> None:
    """Run a bulk job against an emulator started here: no account, nothing really sent.

    The emulator enforces two rolling-window caps (N per 0.25 s and 4N per 1 s,
    scaled so the job takes about --seconds) and counts every send that would
    exceed one; the client gets the same caps, so that count must stay 0.
    """
    code = asyncio.run(_demo(messages, seconds, concurrency))
    raise typer.Exit(code)


async def _demo(messages: int, seconds: float, concurrency: int) -> int:
    from vortext_async.emulator import Emulator, serve_emulator

    windows = demo_windows(messages, seconds)
    caps = ", ".join(f"{n:,} per {w:g} s" for n, w in windows)
    # The emulator counts each send at a random instant up to 5 ms after it arrives,
    # as a real server may: the limiter's rule must hold anyway.
    emu = Emulator(users={"demo": "demo"}, windows=windows, count_delay=0.005, seed=7)
    err = _err()
    async with serve_emulator(emu) as url:
        err.print(
            f"[bold]vortext demo[/]: {messages:,} messages to an emulator at {url}, "
            f"caps {caps} (about {seconds:g} s); Ctrl-C stops gracefully"
        )
        rate_limit = RateLimit(windows=windows)
        client = _client("demo", "demo", url, rate_limit=rate_limit)

        def generate(_on_bad_line: Callable[[SendResult], object]) -> Iterator[Sms]:
            for index in range(messages):
                yield Sms(
                    f"+3361{index % 10_000_000:07d}",
                    f"Demo message {index + 1} of {messages}",
                    metadata={"campaign": "demo", "index": index},
                    key=str(index),
                )

        options = _BulkOptions(concurrency=concurrency, grace=5.0, show_pacing=True)
        tally = await _bulk_job(client, generate, total=messages, options=options, title="demo")
        stats = emu.stats
    out = _out()
    table = tally.table()
    table.add_row("caps (client and emulator)", caps)
    table.add_row("emulator: accepted", f"{stats.accepted:,}")
    table.add_row("emulator: refused (429)", f"{stats.refused:,}")
    style = "green" if stats.violations == 0 else "bold red"
    table.add_row("emulator: cap violations", f"[{style}]{stats.violations}[/]")
    out.print(table)
    code = tally.exit_code()
    if stats.violations:
        out.print("[bold red]the emulator saw sends over its caps: the limiter is wrong[/]")
        code = code or EXIT_FAILED
    return code


def main() -> None:
    """Entry point of the ``vortext`` command."""
    app()


if __name__ == "__main__":
    main()
