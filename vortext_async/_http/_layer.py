"""The HTTP layer: httpx or httpx2 underneath, the same errors above.

This is the only module that knows which library carries the requests.  Both have
the same API (``httpx2`` is the maintained continuation of ``httpx``), so the client
talks to an :class:`HttpLayer`, which maps each library's exceptions to the
:mod:`vortext_async._errors` classes with one meaning: was the request possibly
seen by the server or certainly not?
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import importlib
import math
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from vortext_async._errors import (
    ConfigurationError,
    ConnectError,
    PoolTimeoutError,
    ProtocolError,
    RequestTimeoutError,
    TransportError,
)

from ._library import HttpLibrary, library_of, load_library

__all__ = ["Answer", "HttpLayer", "HttpLibrary", "Target", "parse_retry_after"]


class Target:
    """A request's method, URL and headers, prepared once by :meth:`HttpLayer.prepare`.

    ``url`` and ``headers`` are in the form the carrying library wants (its own
    ``URL``/``Headers``, or aiohttp's for the direct transport); ``text`` is the URL
    for messages.
    """

    __slots__ = ("headers", "method", "text", "url")

    def __init__(self, method: str, text: str, url: Any, headers: Any) -> None:
        self.method = method
        self.text = text
        self.url = url
        self.headers = headers


class Answer:
    """A complete HTTP answer, whichever library carried it: status, body, headers."""

    __slots__ = ("_raw_headers", "content", "status_code")

    def __init__(
        self, status_code: int, content: bytes, raw_headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        self.status_code = status_code
        self.content = content
        self._raw_headers = raw_headers

    @property
    def headers(self) -> dict[str, str]:
        """Header names in lower case; a repeated header's values joined by ``, ``."""
        found: dict[str, str] = {}
        for raw_name, raw_value in self._raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            found[name] = f"{found[name]}, {value}" if name in found else value
        return found


def _timeout(lib: ModuleType, timeout: Any) -> Any:
    """``timeout`` (seconds, or a Timeout of either library) as ``lib.Timeout``."""
    if isinstance(timeout, (int, float)):
        if timeout <= 0 or math.isnan(timeout):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
        return lib.Timeout(timeout)
    parts = {name: getattr(timeout, name, None) for name in ("connect", "read", "write", "pool")}
    if not hasattr(timeout, "read"):
        raise ConfigurationError(f"timeout must be seconds or an httpx Timeout, not {timeout!r}")
    return lib.Timeout(**parts)


class HttpLayer:
    """One ``AsyncClient`` of either library, and the mapping of its failures.

    ``owned`` clients (built here) are closed by :meth:`aclose`; a client handed in by
    the caller is left open for the caller to close.
    """

    __slots__ = (
        "_direct",
        "_errors",
        "_extensions",
        "_lib",
        "client",
        "library",
        "owned",
        "version",
    )

    def __init__(self, client: Any, *, owned: bool, direct: Any = None) -> None:
        lib = library_of(client)
        self.client = client
        self.owned = owned
        self.library: str = lib.__name__
        self.version: str = lib.__version__
        self._lib = lib
        # ``direct``: a transport of ours that this layer's own client wraps.  Requests
        # go straight to it: the client adds nothing we use (no auth, cookies, hooks,
        # redirects or proxies) and costs more CPU than the request itself.
        self._direct = direct
        self._extensions: dict[str, Any] = client.timeout.as_dict() if direct is not None else {}
        # Most specific first: the first matching class decides.  Connect-phase failures
        # and pool timeouts never wrote the request; a failed or timed-out *write* left at
        # most part of it, which no server can act on.  Anything after that may have been
        # seen by the server.
        self._errors: tuple[tuple[type[BaseException], type[TransportError], bool], ...] = (
            (lib.ConnectError, ConnectError, False),
            (lib.ConnectTimeout, ConnectError, False),
            (lib.PoolTimeout, PoolTimeoutError, False),
            (lib.WriteTimeout, RequestTimeoutError, False),
            (lib.WriteError, ProtocolError, False),
            (lib.LocalProtocolError, ProtocolError, False),
            (lib.TimeoutException, RequestTimeoutError, True),
            (lib.TransportError, ProtocolError, True),
            (OSError, ProtocolError, True),
        )

    @classmethod
    def build(
        cls,
        library: HttpLibrary,
        *,
        timeout: Any,
        limits: Any = None,
        transport: Any = None,
    ) -> HttpLayer:
        """A layer over a new client of ``library`` (``"auto"``: httpx2 if installed)."""
        lib = load_library(library)
        options: dict[str, Any] = {"timeout": _timeout(lib, timeout), "follow_redirects": False}
        from ._aiohttp import aiohttp_transport, is_direct

        if transport == "aiohttp":
            transport = aiohttp_transport(lib, limits=limits)
        elif isinstance(transport, str):
            raise ConfigurationError(
                f"transport must be 'aiohttp' or a transport object, not {transport!r}"
            )
        elif limits is not None:
            options["limits"] = limits
        if transport is not None:
            options["transport"] = transport
        direct = transport if is_direct(transport) else None
        return cls(lib.AsyncClient(**options), owned=True, direct=direct)

    def timeout_of(self, timeout: Any) -> Any:
        """``timeout`` converted for this layer's library."""
        return _timeout(importlib.import_module(self.library), timeout)

    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> Target:
        """``method url`` with ``headers``, parsed once for requests that reuse them."""
        if self._direct is not None:
            direct_url, direct_headers = self._direct.prepare(url, headers)
            return Target(method, url, direct_url, direct_headers)
        return Target(method, url, self._lib.URL(url), self._lib.Headers(headers))

    async def exchange(
        self,
        target: Target,
        content: bytes | None = None,
        *,
        extensions: dict[str, Any] | None = None,
    ) -> Answer:
        """Send one request and read the whole answer; failures become ``TransportError``.

        ``extensions`` (a per-request timeout) apply to a handed-in client only.
        """
        try:
            if self._direct is not None:
                status, raw_headers, body, _ = await self._direct.exchange(
                    target.method, target.url, target.headers, content, self._extensions
                )
                return Answer(status, body, raw_headers)
            request = self._lib.Request(
                target.method,
                target.url,
                headers=target.headers,
                content=content,
                extensions=extensions or {},
            )
            response = await self.client.send(request)
            return Answer(response.status_code, response.content, response.headers.raw)
        except BaseException as error:
            mapped = self.map_error(error, target.method, target.text)
            if mapped is None:
                raise
            raise mapped from error

    def map_error(self, error: BaseException, method: str, url: str) -> TransportError | None:
        """The ``TransportError`` for a library failure, or None for anything else."""
        for library_class, ours, maybe_sent in self._errors:
            if isinstance(error, library_class):
                text = str(error) or type(error).__name__
                if ours is ConnectError or ours is PoolTimeoutError:
                    return ours(text, method=method, url=url)
                return ours(text, method=method, url=url, request_sent=maybe_sent)
        return None

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()


def parse_retry_after(
    headers: Mapping[str, str], *, now: _dt.datetime | None = None
) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or HTTP date); None if absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
        seconds = (when - (now or _dt.datetime.now(_dt.UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)
