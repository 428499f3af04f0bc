"""The ``vortext`` application: its options, exit codes and the helpers every command uses."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final, NoReturn

import typer
from rich.console import Console

from vortext_async import (
    AuthenticationError,
    ConfigurationError,
    RateLimit,
    UncertainSendError,
    VortextClient,
    VortextError,
    __version__,
)

EXIT_OK: Final = 0


EXIT_FAILED: Final = 1


EXIT_USAGE: Final = 2


EXIT_UNCERTAIN: Final = 3


EXIT_INTERRUPTED: Final = 130


_SHOWN_PROBLEMS: Final = 20
"""How many problem lines (bad input, failed sends) are printed before going quiet."""


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
