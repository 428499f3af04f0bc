"""Shared fixtures: which HTTP library the suite runs over, and mock APIs for it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.support.library import LIBRARY, TRANSPORT


@pytest.fixture(scope="session")
def http_library() -> str:
    """The library the client builds its AsyncClient from in this run."""
    return LIBRARY


@pytest.fixture(scope="session")
def default_transport() -> str:
    """What ``VortextClient()`` takes in this run: ``"aiohttp"``, or ``"httpx"`` when
    ``VORTEXT_TEST_TRANSPORT=httpx``."""
    return "httpx" if TRANSPORT == "httpx" else "aiohttp"


@pytest.fixture(scope="session")
def httplib() -> ModuleType:
    """The module of that library (httpx or httpx2)."""
    return importlib.import_module(LIBRARY)


Handler = Callable[[Any], Any]


@pytest.fixture
def mock_transport(httplib: ModuleType) -> Callable[[Handler], Any]:
    """``mock_transport(handler)``: the library's own MockTransport (respx is httpx-only)."""
    return lambda handler: httplib.MockTransport(handler)
