"""The ``vortext`` command line (extra ``cli``: typer, rich, uvicorn).

``vortext demo`` runs a whole bulk job against an in-process emulator, with no
account; ``status``, ``send``, ``get`` and ``bulk`` talk to Vortext (or to any
emulator) with the credentials of ``VORTEXT_USERNAME`` / ``VORTEXT_PASSWORD`` (or
``--username`` / ``--password``), which are never printed.  ``vortext emulator``
serves the emulator on a socket.  ``vortext journal`` prints what a bulk journal
(SQLite or PostgreSQL) holds.

Exit codes: 0 success (for ``bulk`` and ``demo``: every message was sent); 1 a
call failed, or some messages were not sent (or the journal failed mid-job); 2 bad
usage, settings or input file, or a SQLite journal busy with another job; 3 ``send``
may or may not have been accepted (do not blindly retry); 130 ``bulk`` stopped by
Ctrl-C (after its summary).

The client is used through its public API only, like any application would.  The
commands (and typer and rich) are imported when first needed, so that a bare
install's ``vortext`` says which extra it lacks instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import typer

    from ._app import app as app

__all__ = ["app", "main"]

_EXTRA_MODULES: Final = ("typer", "rich", "click")
"""What the ``cli`` extra brings that the commands import (click comes with typer)."""

MISSING_EXTRA: Final = (
    "the vortext command needs the 'cli' extra ({missing} is not installed): "
    "pip install 'vortext-async[cli]'"
)
"""The one line ``vortext`` prints on a bare install, before exiting with code 2."""


def _load_app() -> typer.Typer:
    from . import _commands, _demo, _journal  # noqa: F401  (importing them registers commands)
    from ._app import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return _load_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``vortext`` command."""
    try:
        app = _load_app()
    except ImportError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in _EXTRA_MODULES:
            raise
        print(f"error: {MISSING_EXTRA.format(missing=missing)}", file=sys.stderr)
        raise SystemExit(2) from None
    app()
