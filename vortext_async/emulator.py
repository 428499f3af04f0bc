"""An emulator of the Vortext SMS API, to test and benchmark without an account.

In-process, through ``httpx.ASGITransport``::

    emulator = Emulator(users={"demo": "demo"}, windows=[(10, 1.0)])
    transport = httpx.ASGITransport(app=emulator)

or on a real socket::

    async with serve_emulator(emulator) as base_url:
        ...

It shares no code with the client on purpose: it is an independent reading of the
wire format, so a test against it checks the client from the outside.
"""

from ._emulator import (
    DROP_CONNECTION_EXTENSION,
    Emulator,
    EmulatorClock,
    EmulatorStats,
    ReceivedSms,
    ServerKind,
    run_emulator,
    serve_emulator,
)

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
