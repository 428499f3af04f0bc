"""Which HTTP library and which path the suite runs over.

``VORTEXT_TEST_HTTP_LIBRARY``: ``httpx`` or ``httpx2`` (default: httpx2 when installed).
``VORTEXT_TEST_TRANSPORT``: ``auto`` (default: the direct aiohttp path, what
``VortextClient()`` takes) or ``httpx`` (every client built with ``transport="auto"``
takes httpcore instead, through the chosen library).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

__all__ = ["LIBRARY", "TRANSPORT", "requires_httpx"]

LIBRARY = os.environ.get("VORTEXT_TEST_HTTP_LIBRARY", "auto")
if LIBRARY == "auto":
    LIBRARY = "httpx2" if importlib.util.find_spec("httpx2") else "httpx"

TRANSPORT = os.environ.get("VORTEXT_TEST_TRANSPORT", "auto")
if TRANSPORT not in ("auto", "httpx"):
    raise RuntimeError(f"VORTEXT_TEST_TRANSPORT must be 'auto' or 'httpx', not {TRANSPORT!r}")
if TRANSPORT == "httpx":
    from vortext_async._http import _layer

    _layer.AUTO_TRANSPORT = "httpx"

requires_httpx = pytest.mark.skipif(LIBRARY != "httpx", reason="respx patches httpx only")
"""For tests that need httpx itself underneath (respx patches httpx only)."""
