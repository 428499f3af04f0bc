"""Test helpers for users' own suites: an emulator and a client bound to it.

A pytest plugin (also importable without pytest)::

    async def test_notify(vortext_client, vortext_emulator):
        await my_service.notify(vortext_client, "+33611272727")
        assert vortext_emulator.received_count("+33611272727", "Your code is 1234") == 1

Fixtures: ``vortext_emulator`` (a fresh :class:`~vortext_async.emulator.Emulator`;
configure it with ``@pytest.mark.vortext_emulator(windows=[(10, 60)], ...)``),
``vortext_client`` (a :class:`~vortext_async.VortextClient` bound to it in-process,
no socket), ``vortext_emulator_url`` (the same emulator served on loopback).
:class:`VirtualClock` makes rate-limit and retry waits instant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from vortext_async import VortextClient
from vortext_async._http import load_library
from vortext_async._virtual_clock import VirtualClock
from vortext_async.emulator import Emulator, serve_emulator

__all__ = [
    "EMULATOR_BASE_URL",
    "EMULATOR_PASSWORD",
    "EMULATOR_USERNAME",
    "VirtualClock",
    "emulator_client",
]

EMULATOR_USERNAME = "demo"
"""The credentials of the fixtures' emulator."""
EMULATOR_PASSWORD = "demo"
EMULATOR_BASE_URL = "http://emulator.invalid"
"""The base URL of an in-process client (never resolved: requests go to the app)."""


def emulator_client(
    emulator: Emulator,
    *,
    username: str = EMULATOR_USERNAME,
    password: str = EMULATOR_PASSWORD,
    **options: Any,
) -> VortextClient:
    """A :class:`~vortext_async.VortextClient` talking to ``emulator`` in-process.

    ``options`` go to the client (``rate_limit=``, ``retry=``, ``clock=``...).  The
    ASGI transport comes from the HTTP library the client uses (``http_library``
    option: ``"auto"`` picks httpx2 when installed, like the client).
    """
    # The library choice of the client itself, so the transport fits the client.
    library = load_library(options.pop("http_library", "auto"))
    return VortextClient(
        username,
        password,
        base_url=EMULATOR_BASE_URL,
        transport=library.ASGITransport(app=emulator),
        http_library="httpx2" if library.__name__ == "httpx2" else "httpx",
        **options,
    )


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover
        _async_fixture = pytest.fixture  # type: ignore[assignment]

    def pytest_configure(config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers",
            "vortext_emulator(**options): options of the vortext_emulator fixture's Emulator",
        )

    @pytest.fixture
    def vortext_emulator(request: pytest.FixtureRequest) -> Emulator:
        """A fresh emulator (user ``demo``/``demo``), options from the marker."""
        marker = request.node.get_closest_marker("vortext_emulator")
        options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        options.setdefault("users", {EMULATOR_USERNAME: EMULATOR_PASSWORD})
        return Emulator(**options)

    @_async_fixture
    async def vortext_client(vortext_emulator: Emulator) -> AsyncIterator[VortextClient]:
        """A client bound to ``vortext_emulator`` in-process, closed after the test."""
        async with emulator_client(vortext_emulator) as client:
            yield client
        await vortext_emulator.aclose()

    @_async_fixture
    async def vortext_emulator_url(vortext_emulator: Emulator) -> AsyncIterator[str]:
        """``vortext_emulator`` served on a free loopback port: its base URL."""
        async with serve_emulator(vortext_emulator) as url:
            yield url
