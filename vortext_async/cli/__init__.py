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

The client is used through its public API only, like any application would.
"""

from __future__ import annotations

from . import _commands, _demo, _journal  # noqa: F401  (importing them registers their commands)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``vortext`` command."""
    app()
