"""A client of a test server over each transport the library offers.

``open_client(kind, base_url)`` for each ``kind`` of :data:`TRANSPORTS`, to prove a
behaviour holds whichever way the requests go (against ``faults.EdgeServer`` mostly).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from tests.support.library import LIBRARY
from vortext_async import VortextClient, aiohttp_transport

__all__ = ["TRANSPORTS", "http_module", "open_client"]

TRANSPORTS = ("httpcore", "aiohttp", "handed-in client", "handed-in aiohttp_transport")
"""The ways a client can carry requests: the httpcore pool of a client built here, the
direct aiohttp path, a handed-in ``AsyncClient`` (which follows redirects, to prove
they are never followed), and a handed-in ``AsyncClient`` over ``aiohttp_transport``."""


def http_module() -> ModuleType:
    """The library of this run (``VORTEXT_TEST_HTTP_LIBRARY``, else httpx2 when installed)."""
    return importlib.import_module(LIBRARY)


@contextlib.asynccontextmanager
async def open_client(kind: str, base_url: str, **options: Any) -> AsyncIterator[VortextClient]:
    """A client of ``base_url`` over the transport ``kind`` (one of :data:`TRANSPORTS`)."""
    lib = http_module()
    handed_in: Any = None
    if kind in ("httpcore", "aiohttp"):
        options["http_library"] = lib.__name__
    if kind == "httpcore":
        options["transport"] = lib.AsyncHTTPTransport()
    elif kind == "aiohttp":
        options["transport"] = "aiohttp"
    elif kind == "handed-in client":
        handed_in = lib.AsyncClient(follow_redirects=True)
    elif kind == "handed-in aiohttp_transport":
        handed_in = lib.AsyncClient(transport=aiohttp_transport(lib.__name__))
    else:
        raise ValueError(kind)
    try:
        async with VortextClient(
            "acme", "secret", base_url=base_url, http_client=handed_in, **options
        ) as client:
            yield client
    finally:
        if handed_in is not None:
            await handed_in.aclose()
