"""The Vortext API emulator (see :mod:`vortext_async.emulator`, the public module)."""

from ._app import DROP_CONNECTION_EXTENSION, Emulator, EmulatorClock, EmulatorStats
from ._server import ServerKind, run_emulator, serve_emulator
from ._store import ReceivedSms

__all__ = [
    "DROP_CONNECTION_EXTENSION",
    "Emulator",
    "EmulatorClock",
    "EmulatorStats",
    "ReceivedSms",
    "ServerKind",
    "run_emulator",
    "serve_emulator",
]
