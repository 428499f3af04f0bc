"""The HTTP layer: the only part of the package that knows httpx, httpx2 and aiohttp.

- :mod:`._library`: which library carries the requests (``load_library``, ``library_of``);
- :mod:`._layer`: :class:`HttpLayer`, one API and one set of errors over either library;
- :mod:`._aiohttp`: the aiohttp-backed transport for the fast send path.
"""

from __future__ import annotations

from ._aiohttp import aiohttp_transport, is_direct
from ._layer import Answer, HttpLayer, Target, parse_retry_after
from ._library import HttpLibrary, library_of, load_library

__all__ = [
    "Answer",
    "HttpLayer",
    "HttpLibrary",
    "Target",
    "aiohttp_transport",
    "is_direct",
    "library_of",
    "load_library",
    "parse_retry_after",
]
