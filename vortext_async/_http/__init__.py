"""The HTTP layer: the only part of the package that knows httpx, httpx2 and aiohttp.

- :mod:`._library`: which library carries the requests (``load_library``, ``library_of``);
- :mod:`._layer`: :class:`HttpLayer`, one API and one set of errors over either library;
- :mod:`._aiohttp`: the aiohttp-backed transport for the fast send path;
- :mod:`._body`: answers read as a stream, decoded within a limit (``BodyReader``);
- :mod:`._network`: proxy, TLS verification, client certificate, the environment;
- :mod:`._secret`: header values whose ``repr`` hides them (the credential);
- :mod:`._types`: the types of the HTTP options (either library's objects).
"""

from __future__ import annotations

from ._aiohttp import aiohttp_transport, is_direct
from ._body import DEFAULT_MAX_RESPONSE_BYTES
from ._layer import Answer, HttpLayer, Target, parse_retry_after
from ._library import HttpLibrary, library_of, load_library
from ._network import Cert, ProxyUrl, Verify
from ._secret import SecretStr
from ._types import HttpClient, HttpLimits, HttpTimeout, HttpTransport, HttpTransportObject

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Answer",
    "Cert",
    "HttpClient",
    "HttpLayer",
    "HttpLibrary",
    "HttpLimits",
    "HttpTimeout",
    "HttpTransport",
    "HttpTransportObject",
    "ProxyUrl",
    "SecretStr",
    "Target",
    "Verify",
    "aiohttp_transport",
    "is_direct",
    "library_of",
    "load_library",
    "parse_retry_after",
]
