"""Shared fixtures: which HTTP library the suite runs over, and mock APIs for it."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

LIBRARY = os.environ.get("VORTEXT_TEST_HTTP_LIBRARY", "auto")
if LIBRARY == "auto":
    LIBRARY = "httpx2" if importlib.util.find_spec("httpx2") else "httpx"


@pytest.fixture(scope="session")
def http_library() -> str:
    """The library the client builds its AsyncClient from in this run."""
    return LIBRARY


@pytest.fixture(scope="session")
def httplib() -> ModuleType:
    """The module of that library (httpx or httpx2)."""
    return importlib.import_module(LIBRARY)


Handler = Callable[[Any], Any]


@pytest.fixture
def mock_transport(httplib: ModuleType) -> Callable[[Handler], Any]:
    """``mock_transport(handler)``: the library's own MockTransport (respx is httpx-only)."""
    return lambda handler: httplib.MockTransport(handler)


requires_httpx = pytest.mark.skipif(LIBRARY != "httpx", reason="respx patches httpx only")
