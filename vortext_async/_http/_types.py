"""The types of the HTTP options in the client's signature, for either library.

``VortextClient(timeout=..., limits=..., transport=..., http_client=...)`` takes the
objects of httpx or of httpx2, whichever carries the requests.  The aliases name both
libraries' classes for the type checker without importing either at run time (httpx2
is an optional extra): each is a ``Union`` of forward references, resolved by mypy or
pyright where both are installed (``nox -s types``), and plain ``ForwardRef`` objects
at run time.  Where httpx2 is not installed a checker sees its half as ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias, Union

if TYPE_CHECKING:
    import httpx
    import httpx2

__all__ = ["HttpClient", "HttpLimits", "HttpTimeout", "HttpTransport", "HttpTransportObject"]

# Union with strings: ``X | "y"`` fails at run time; these names never import httpx2.
HttpClient: TypeAlias = Union["httpx.AsyncClient", "httpx2.AsyncClient"]
"""An ``httpx.AsyncClient`` or an ``httpx2.AsyncClient``."""

HttpTimeout: TypeAlias = Union[float, "httpx.Timeout", "httpx2.Timeout"]
"""Seconds for every phase, or a ``Timeout`` of either library."""

HttpLimits: TypeAlias = Union["httpx.Limits", "httpx2.Limits"]
"""Connection pool limits of either library."""

HttpTransportObject: TypeAlias = Union["httpx.AsyncBaseTransport", "httpx2.AsyncBaseTransport"]
"""A transport object of either library (what :func:`aiohttp_transport` returns)."""

HttpTransport: TypeAlias = Literal["auto", "aiohttp", "httpx"] | HttpTransportObject
"""``"auto"`` (the default: the direct aiohttp path, httpcore for a SOCKS proxy),
``"aiohttp"`` (the direct path only), ``"httpx"`` (httpcore, through the library's own
``AsyncClient``) or a transport object of either library (an ``ASGITransport``, a
mock)."""
