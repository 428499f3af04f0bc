"""The choice of HTTP library: httpx2 when installed (or asked), else httpx.

The one place that picks the library; the HTTP layer, the aiohttp transport and the
pytest plugin all ask here.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Literal

from vortext_async._errors import ConfigurationError

__all__ = ["HttpLibrary", "library_of", "load_library"]

HttpLibrary = Literal["auto", "httpx", "httpx2"]
_LIBRARIES = ("httpx2", "httpx")


def load_library(name: HttpLibrary) -> ModuleType:
    """The module to build clients from: ``httpx2`` when installed (or asked), else ``httpx``."""
    if name == "auto":
        name = "httpx2" if importlib.util.find_spec("httpx2") is not None else "httpx"
    if name not in _LIBRARIES:
        raise ConfigurationError(f"http_library must be 'auto', 'httpx' or 'httpx2', not {name!r}")
    try:
        return importlib.import_module(name)
    except ImportError:
        extra = " (pip install 'vortext-async[httpx2]')" if name == "httpx2" else ""
        raise ConfigurationError(
            f"http_library={name!r} but {name} is not installed{extra}"
        ) from None


def library_of(http_client: object) -> ModuleType:
    """The library a user-built ``AsyncClient`` comes from."""
    root = type(http_client).__module__.partition(".")[0]
    if root not in _LIBRARIES or type(http_client).__name__ != "AsyncClient":
        raise ConfigurationError(
            "http_client must be an httpx.AsyncClient or an httpx2.AsyncClient, "
            f"not {type(http_client).__module__}.{type(http_client).__qualname__}"
        )
    return importlib.import_module(root)
