"""Which HTTP library the suite runs over: ``VORTEXT_TEST_HTTP_LIBRARY``, else the best one."""

from __future__ import annotations

import importlib.util
import os

import pytest

__all__ = ["LIBRARY", "requires_httpx"]

LIBRARY = os.environ.get("VORTEXT_TEST_HTTP_LIBRARY", "auto")
if LIBRARY == "auto":
    LIBRARY = "httpx2" if importlib.util.find_spec("httpx2") else "httpx"

requires_httpx = pytest.mark.skipif(LIBRARY != "httpx", reason="respx patches httpx only")
"""For tests that need httpx itself underneath (respx patches httpx only)."""
