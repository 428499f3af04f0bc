"""``vortext emulator`` (serve the emulator) and ``vortext demo`` (a bulk job against it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated, Final

import typer

from vortext_async import (
    RateLimit,
    SendResult,
    Sms,
)

from ._app import (
    EXIT_FAILED,
    EXIT_USAGE,
    _client,
    _err,
    _fail,
    _out,
    _seconds,
    app,
)
from ._display import (
    _bulk_job,
    _BulkOptions,
)


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


DEMO_WINDOWS: Final = (0.25, 1.0)
"""The demo's caps: two rolling windows, a short one that smooths bursts and a longer one, like
an account's per-minute and per-hour caps with time scaled down.
"""


DEMO_HEADROOM: Final = 1.25
"""Each token comes back W after its send was *answered* (the limiter's rule), so the real pace
is N / (W + round trip), below the caps' nominal N / W: the caps are set this much above the
wanted pace so the job takes about the wanted time.
"""


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
