"""The client over a real socket: the emulator served on loopback, the real transport.

The emulator shares no code with the client, so these calls check the wire format
from the outside, through each library's real connection pool.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

import pytest

from vortext_async import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    NotFoundError,
    RetryPolicy,
    VortextClient,
)
from vortext_async.emulator import Emulator, serve_emulator

NO_RETRY = RetryPolicy.no_retries()


@pytest.fixture
async def emulator() -> Emulator:
    return Emulator(users={"acme": "s3cr3t"}, seed=7)


@pytest.fixture
async def base_url(emulator: Emulator) -> AsyncIterator[str]:
    async with serve_emulator(emulator, server="uvicorn") as url:
        yield url


async def test_the_quick_start_works_against_a_real_server(
    base_url: str, emulator: Emulator, http_library: str
) -> None:
    async with VortextClient(
        "acme", "s3cr3t", base_url=base_url, http_library=http_library
    ) as client:  # type: ignore[arg-type]
        await client.status()
        sent = await client.send_sms(
            "+33611272727", "Please call me", metadata={"myCustomerId": "123de32"}
        )
        detail = await client.get_sms(sent.message_id)
    assert detail.message_id == sent.message_id
    assert detail.phone_number == "+33611272727"
    assert detail.message == "Please call me"
    assert detail.metadata == {"myCustomerId": "123de32"}
    assert (
        emulator.received_count("+33611272727", "Please call me", {"myCustomerId": "123de32"}) == 1
    )


async def test_errors_from_a_real_server(base_url: str, http_library: str) -> None:
    async with VortextClient(
        "acme", "bad-Pa55", base_url=base_url, retry=NO_RETRY, http_library=http_library
    ) as client:  # type: ignore[arg-type]
        with pytest.raises(AuthenticationError) as caught:
            await client.status()
        assert caught.value.status_code == 401
        assert "bad-Pa55" not in str(caught.value)
    async with VortextClient(
        "acme", "s3cr3t", base_url=base_url, retry=NO_RETRY, http_library=http_library
    ) as client:  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            await client.get_sms("no-such-id")
        # The emulator judges numbers like the server: the client's loose check lets
        # this through and the server's 400 comes back as a BadRequestError.
        with pytest.raises(BadRequestError) as refused:
            await client.send_sms("+123", "hi")
        assert refused.value.certainly_not_sent


async def test_a_refused_connection_is_a_connect_error(http_library: str) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with VortextClient(
        "u", "p", base_url=f"http://127.0.0.1:{port}", retry=NO_RETRY, http_library=http_library
    ) as client:  # type: ignore[arg-type]
        with pytest.raises(ConnectError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert caught.value.certainly_not_sent
    assert not isinstance(caught.value.__cause__, ConnectError)  # the library's, chained


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Records every time Python searches for ``sniffio`` (i.e. it was not cached)."""

    def __init__(self) -> None:
        self.searches = 0

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if name == "sniffio":
            self.searches += 1
        return None


async def test_no_import_is_attempted_per_request(base_url: str, http_library: str) -> None:
    """httpcore 1.0.9 imports sniffio on every lock; without it installed that is a
    failed import (a sys.path search) per request.  sniffio is a declared dependency."""
    watcher = _ImportWatcher()
    async with VortextClient(
        "acme", "s3cr3t", base_url=base_url, http_library=http_library
    ) as client:  # type: ignore[arg-type]
        await client.status()  # warm: first imports happen here
        sys.meta_path.insert(0, watcher)
        try:
            for _ in range(20):
                await client.send_sms("+33611272727", "hi")
        finally:
            sys.meta_path.remove(watcher)
    assert watcher.searches == 0
