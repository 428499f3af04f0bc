"""The HTTP layer: httpx or httpx2 underneath, the same errors above.

This is the only module that knows which library carries the requests.  Both have
the same API (``httpx2`` is the maintained continuation of ``httpx``), so the client
talks to an :class:`HttpLayer`, which maps each library's exceptions to the
:mod:`vortext_async._errors` classes with one meaning: was the request possibly
seen by the server or certainly not?

Whatever carries it, an exchange has one deadline for all of it (``attempt_timeout``)
and its answer is read as a stream, decoded here within a limit
(:mod:`._body`): a dripping, huge or compressed-bomb answer costs a
bounded time and memory.  Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import email.utils
import importlib
import math
import ssl
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

from ._aiohttp import build_transport, is_direct
from ._body import ACCEPT_ENCODING, BodyReader, body_limit, content_encoding
from ._library import HttpLibrary, library_of, load_library
from ._network import Cert, ProxyMap, Verify, ssl_context
from ._secret import as_bytes_headers
from ._types import HttpClient

__all__ = ["TRANSPORTS", "Answer", "HttpLayer", "HttpLibrary", "Target", "parse_retry_after"]

TRANSPORTS = ("auto", "aiohttp", "httpx")
"""The transports named by a string (see :meth:`HttpLayer.build`)."""

AUTO_TRANSPORT = "aiohttp"
"""What ``transport="auto"`` takes when nothing asked needs httpcore.  The test suite's
``VORTEXT_TEST_TRANSPORT=httpx`` run sets it to ``"httpx"``, to run every test of the
default path over httpcore too."""


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
    """An HTTP answer, whichever library carried it: status, decoded body, headers.

    ``content`` is the decoded body, read as a stream and cut at a limit: the whole
    of a 2xx answer up to ``max_bytes``, an excerpt of any other.  ``problem`` is None
    when ``content`` is the whole body, else why it is not (over the limit, an
    encoding we cannot decode): a 2xx answer with a problem cannot be trusted.
    """

    __slots__ = ("_raw_headers", "content", "problem", "status_code")

    def __init__(
        self,
        status_code: int,
        content: bytes,
        raw_headers: Sequence[tuple[bytes, bytes]],
        problem: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.content = content
        self._raw_headers = raw_headers
        self.problem = problem

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
        "name",
        "owned",
        "version",
    )

    def __init__(
        self, client: Any, *, owned: bool, direct: Any = None, name: str = "custom"
    ) -> None:
        lib = library_of(client)
        self.client: HttpClient = client
        self.owned = owned
        self.name = name
        """What carries the requests: ``"aiohttp"`` (the direct path), ``"httpx"``
        (httpcore) or ``"custom"`` (a transport object or a handed-in client)."""
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
        transport: Any = "auto",
        proxy: Any = None,
        verify: Verify = True,
        cert: Cert | None = None,
        trust_env: bool = True,
    ) -> HttpLayer:
        """A layer over a new client of ``library`` (``"auto"``: httpx2 if installed).

        ``transport``: ``"auto"`` (the direct aiohttp path, or httpcore for a SOCKS
        proxy), ``"aiohttp"`` (the direct path, or a clear error), ``"httpx"``
        (httpcore, through the library's own ``AsyncClient``) or a transport object
        (which takes no network option: it has its own).
        """
        lib = load_library(library)
        options: dict[str, Any] = {"timeout": _timeout(lib, timeout), "follow_redirects": False}
        if transport is None:
            transport = "auto"
        if not isinstance(transport, str):
            given = [
                name
                for name, value, default in (("proxy", proxy, None), ("cert", cert, None))
                if value is not default
            ]
            if verify is not True:
                given.insert(1, "verify")
            if given:
                raise ConfigurationError(
                    f"give {'/'.join(given)} to your transport object, not here"
                )
            if limits is not None and not is_direct(transport):
                options["limits"] = limits
            options["transport"] = transport
            direct = transport if is_direct(transport) else None
            return cls(lib.AsyncClient(**options), owned=True, direct=direct, name="custom")
        if transport not in TRANSPORTS:
            raise ConfigurationError(
                f"transport must be 'auto', 'aiohttp', 'httpx' or a transport object, "
                f"not {transport!r}"
            )
        if transport == "aiohttp" or (transport == "auto" and AUTO_TRANSPORT == "aiohttp"):
            proxies = ProxyMap(lib, proxy=proxy, trust_env=trust_env)
            if transport == "aiohttp" or not proxies.any_socks:
                direct = build_transport(
                    lib,
                    limits=limits,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                    trust_env=trust_env,
                )
                options["transport"] = direct
                return cls(lib.AsyncClient(**options), owned=True, direct=direct, name="aiohttp")
            # "auto" behind a SOCKS proxy: httpcore speaks SOCKS (with socksio), aiohttp not.
        if limits is not None:
            options["limits"] = limits
        tls = None
        if verify is not True or cert is not None:
            tls = options["verify"] = ssl_context(lib, verify, cert, trust_env=trust_env)
        options["trust_env"] = trust_env
        if proxy is not None:
            ProxyMap(lib, proxy=proxy, trust_env=False)  # a bad URL: refused, redacted
            # An https:// proxy is verified with ``verify`` too, as on the direct path
            # (httpcore refuses a proxy TLS context for an http:// proxy).
            https_proxy = str(proxy).lower().startswith("https://")
            options["proxy"] = lib.Proxy(url=proxy, ssl_context=tls if https_proxy else None)
        missing = None
        try:
            client = lib.AsyncClient(**options)
        except ImportError as error:  # a SOCKS proxy without socksio
            missing = str(error)
        if missing is not None:
            raise ConfigurationError(f"{missing} (a SOCKS proxy needs it)")
        return cls(client, owned=True, name="httpx")

    def timeout_of(self, timeout: Any) -> Any:
        """``timeout`` converted for this layer's library."""
        return _timeout(importlib.import_module(self.library), timeout)

    def prepare(self, method: str, url: str, headers: Mapping[str, str]) -> Target:
        """``method url`` with ``headers``, parsed once for requests that reuse them.

        ``Accept-Encoding`` is set to what :class:`BodyReader` decodes: bodies are
        decoded here, within a limit, never by the library.
        """
        headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        if self._direct is not None:
            direct_url, direct_headers = self._direct.prepare(url, headers)
            return Target(method, url, direct_url, direct_headers)
        return Target(method, url, self._lib.URL(url), self._lib.Headers(as_bytes_headers(headers)))

    async def exchange(
        self,
        target: Target,
        content: bytes | None = None,
        *,
        extensions: dict[str, Any] | None = None,
        attempt_timeout: float,
        max_bytes: int,
    ) -> Answer:
        """Send one request and read its answer; failures become ``TransportError``.

        The whole exchange (a pooled or new connection, the request, the status line,
        the headers and the body) ends within ``attempt_timeout`` seconds, whatever
        the library's own timeouts allow: past it, a :class:`RequestTimeoutError` that
        says the request may have been seen.  The body is read as a stream and decoded
        here, keeping at most ``max_bytes`` of a 2xx answer (an excerpt of any other,
        see :func:`body_limit`); past that the connection is dropped and the answer
        comes back with its ``problem`` set.  Redirects are never followed.

        ``extensions`` (a per-request timeout) apply to a handed-in client only.
        """
        direct = self._direct
        if direct is not None:
            # The direct path: aiohttp's own ``total`` timeout is the deadline (it covers
            # the connection, the request and the body, as ``asyncio.timeout`` would, for
            # fewer objects and no extra coroutines per request).
            try:
                status, raw_headers, body, problem = await direct.exchange(
                    target.method,
                    target.url,
                    target.headers,
                    content,
                    self._extensions,
                    max_bytes=max_bytes,
                    total=attempt_timeout,
                )
            except TimeoutError:  # only the total deadline is raised as a bare TimeoutError
                raise _attempt_timed_out(target, attempt_timeout) from None
            except BaseException as error:
                mapped = self.map_error(error, target.method, target.text)
                if mapped is None:
                    raise
                raise mapped from error
            return Answer(status, body, raw_headers, problem)
        deadline = asyncio.timeout(attempt_timeout)
        try:
            async with deadline:
                return await self._exchange(target, content, extensions, max_bytes)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise _attempt_timed_out(target, attempt_timeout) from None

    async def _exchange(
        self,
        target: Target,
        content: bytes | None,
        extensions: dict[str, Any] | None,
        max_bytes: int,
    ) -> Answer:
        try:
            request = self._lib.Request(
                target.method,
                target.url,
                headers=target.headers,
                content=content,
                extensions=extensions or {},
            )
            # A handed-in client may follow redirects: never for us (a send must not
            # be made twice, nor turned into a GET somewhere else).
            response = await self.client.send(request, stream=True, follow_redirects=False)
            try:
                raw_headers = response.headers.raw
                limit = body_limit(response.status_code, max_bytes)
                if response.is_stream_consumed:
                    # Built in memory by the transport (a mock's ``content=``): the
                    # library has read and decoded it already.
                    reader = BodyReader(None, limit)
                    reader.feed(response.content)
                else:
                    reader = BodyReader(content_encoding(raw_headers), limit)
                    if reader.complete:
                        async for chunk in response.aiter_raw():
                            if not reader.feed(chunk):
                                break
            finally:
                await response.aclose()
            return Answer(response.status_code, reader.body, raw_headers, reader.problem)
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
                refused = _certificate_refused(error)
                if refused is not None and "certificate verification failed" not in text:
                    text = f"TLS certificate verification failed: {refused}"
                if ours is ConnectError or ours is PoolTimeoutError:
                    return ours(text, method=method, url=url)
                return ours(text, method=method, url=url, request_sent=maybe_sent)
        return None

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()


def _attempt_timed_out(target: Target, attempt_timeout: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"no complete answer within attempt_timeout={attempt_timeout:g} s",
        method=target.method,
        url=target.text,
        request_sent=True,
    )


def _certificate_refused(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed under ``error`` (its causes), if one did."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


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
