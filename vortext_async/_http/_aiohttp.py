"""The fast send path: an aiohttp-backed transport for httpx and httpx2 clients.

httpcore's connection pool (the default transport of both libraries) scans every
connection for every queued request on each event, so its cost per request grows
with connections x requests and throughput *falls* as concurrency rises
(encode/httpcore#1029).  aiohttp's connector hands out pooled connections in O(1),
so an ``AsyncClient`` over this transport keeps its throughput at high concurrency
while users still see the httpx API.  It is the client's default (``transport="auto"``).

The transport is built for one library (it is handed the module, ``httpx`` or
``httpx2``: it never imports either) and maps every aiohttp failure to that
library's exceptions with the meaning the HTTP layer relies on: a failure while
getting a connection is a ``ConnectError``/``ConnectTimeout``/``PoolTimeout`` (the
request was never written); anything after that is a read error or timeout (the
server may have seen it).  Bodies are streamed, never decoded here: the HTTP layer
reads them within a limit and decodes them itself, and a failure while reading one
gets the same mapping.

Besides ``handle_async_request`` (for any ``AsyncClient``), the transport offers the
HTTP layer a direct path, ``prepare()`` once and ``exchange()`` per request, that
builds no ``Request`` or ``Response`` of the library: on a loopback server it halves
the client's CPU per send (``benchmarks/README.md``).

Proxies, TLS verification and client certificates mean what they mean in httpx
(:mod:`._network` reads them with the library's own code): HTTP and HTTPS proxies,
explicit or from the environment; SOCKS proxies are httpcore's alone.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Sequence
from functools import cache
from types import ModuleType
from typing import Any

from ._body import BodyReader, body_limit
from ._library import HttpLibrary
from ._network import Cert, ProxyMap, ProxyRoute, ProxyUrl, Verify, ssl_context
from ._types import HttpLimits, HttpTransportObject

__all__ = ["aiohttp_transport", "is_direct"]

DEFAULT_MAX_CONNECTIONS = 100
"""Connections per client when no ``limits`` are given (httpx's default too)."""
DEFAULT_KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle pooled connection is kept (httpx's default too)."""


def aiohttp_transport(
    library: HttpLibrary | ModuleType = "auto",
    *,
    limits: HttpLimits | None = None,
    verify: Verify = True,
    cert: Cert | None = None,
    proxy: ProxyUrl | None = None,
) -> HttpTransportObject:
    """An ``AsyncBaseTransport`` of ``library`` that sends over an ``aiohttp`` pool.

    ``library`` is ``"httpx"``, ``"httpx2"``, ``"auto"`` (httpx2 when installed, like
    the client) or the module itself; the transport only works in a client of that
    library.  ``limits`` is a ``Limits`` (``max_connections`` and ``keepalive_expiry`` are
    used; aiohttp keeps every idle connection up to ``max_connections``).  ``verify``
    and ``cert`` are httpx's: True (certifi's CA bundle), False, a CA bundle path or an
    ``ssl.SSLContext``; a client certificate.  ``proxy`` is an ``http://`` or
    ``https://`` proxy for every request (SOCKS: use httpx's own transport).  The
    environment's proxies are the client's business, as in httpx.
    """
    if isinstance(library, str):
        from ._library import load_library

        library = load_library(library)
    return build_transport(
        library,
        limits=limits,
        verify=verify,
        cert=cert,
        proxies=ProxyMap(library, proxy=proxy, trust_env=False),
        trust_env=True,
    )


def build_transport(
    lib: ModuleType,
    *,
    limits: HttpLimits | None,
    verify: Verify,
    cert: Cert | None,
    proxies: ProxyMap,
    trust_env: bool,
) -> HttpTransportObject:
    """The transport, with its network options already read (see :class:`ProxyMap`)."""
    if proxies.any_socks:
        from vortext_async._errors import ConfigurationError

        raise ConfigurationError(
            "the aiohttp transport cannot use a SOCKS proxy: pass transport='httpx' "
            "(and pip install socksio)"
        )
    if verify is True and cert is None:
        tls: ssl.SSLContext | None = None  # built on first use: loading certifi costs ~40 ms
    else:
        tls = ssl_context(lib, verify, cert, trust_env=trust_env)  # bad paths fail here
    transport: HttpTransportObject = _transport_class(lib)(
        limits=limits, tls=tls, proxies=proxies, trust_env=trust_env
    )
    return transport


def is_direct(transport: object) -> bool:
    """Whether ``transport`` answers with complete responses a client may skip.

    True for the transports built here: their ``exchange()`` reads an answer within
    the layer's limits, and an ``AsyncClient`` of our own around them adds nothing
    the HTTP layer uses.
    """
    return getattr(type(transport), "_vortext_direct", False) is True


@cache
def _transport_class(lib: ModuleType) -> type[Any]:
    """The transport class for ``lib`` (its base class and exceptions differ)."""
    import aiohttp
    import multidict
    import yarl

    def mapped(error: BaseException, request: Any) -> Any:
        """``lib``'s exception for an aiohttp failure (most specific first)."""
        text = str(error) or type(error).__name__
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            host = f"{error.host}:{error.port}"
            cause = error.certificate_error
            return lib.ConnectError(
                f"TLS certificate verification failed for {host}: {cause}", request=request
            )
        if isinstance(error, aiohttp.ClientHttpProxyError):
            # The proxy refused the tunnel (CONNECT): nothing reached the server.
            return lib.ConnectError(
                f"the proxy refused the tunnel: {error.status} {error.message}", request=request
            )
        if isinstance(error, aiohttp.ClientConnectorError):
            return lib.ConnectError(text, request=request)
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            # aiohttp's connect phase: waiting for a pooled connection, then opening
            # one; it ends before anything is written.
            return lib.ConnectTimeout(text, request=request)
        if isinstance(error, aiohttp.ServerTimeoutError | TimeoutError):
            return lib.ReadTimeout(text, request=request)
        if isinstance(error, aiohttp.InvalidURL):
            return lib.LocalProtocolError(text, request=request)
        if isinstance(error, aiohttp.ClientResponseError):
            return lib.RemoteProtocolError(text, request=request)
        # Disconnects, resets, truncated bodies: the request may have gone out.
        return lib.ReadError(text, request=request)

    class AiohttpStream(lib.AsyncByteStream):  # type: ignore[misc,name-defined]
        """An answer's body as it arrives (raw bytes), for a streamed ``Response``."""

        def __init__(self, answer: aiohttp.ClientResponse, request: Any) -> None:
            self._answer = answer
            self._request = request

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._answer.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise mapped(error, self._request) from error

        async def aclose(self) -> None:
            if not self._answer.content.is_eof():
                self._answer.close()  # stopped early: the connection cannot be reused
            self._answer.release()

    class Route:
        """Where one request goes: its URL, the proxy on the way, the TLS context."""

        __slots__ = ("authorization", "proxy", "proxy_headers", "ssl", "url")

        def __init__(
            self,
            url: yarl.URL,
            tls: ssl.SSLContext | bool,
            proxy: ProxyRoute | None = None,
        ) -> None:
            self.url = url
            self.ssl = tls
            self.proxy: yarl.URL | None = None
            self.proxy_headers: multidict.CIMultiDict[str] | None = None
            # Plain HTTP through a proxy: the request itself carries its credentials.
            self.authorization = None
            if proxy is not None:
                self.proxy = yarl.URL(proxy.url)
                if proxy.authorization is not None and url.scheme == "https":
                    # Sent with CONNECT, to the proxy only: the server never sees it.
                    self.proxy_headers = multidict.CIMultiDict(
                        {"Proxy-Authorization": proxy.authorization}
                    )
                else:
                    self.authorization = proxy.authorization

    class AiohttpTransport(lib.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        """An ``AsyncBaseTransport`` over one ``aiohttp.ClientSession``."""

        _vortext_direct = True

        def __init__(
            self,
            *,
            limits: Any,
            tls: ssl.SSLContext | None,
            proxies: ProxyMap,
            trust_env: bool,
        ) -> None:
            max_connections = DEFAULT_MAX_CONNECTIONS
            keepalive = DEFAULT_KEEPALIVE_EXPIRY
            if limits is not None:
                max_connections = limits.max_connections or 0  # 0: no limit in aiohttp
                if limits.keepalive_expiry is not None:
                    keepalive = limits.keepalive_expiry
            self._max_connections = max_connections
            self._keepalive = keepalive
            self._tls = tls
            self._trust_env = trust_env
            self._proxies = proxies
            self._session: aiohttp.ClientSession | None = None
            self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
            self._last_timeout: tuple[object, float | None, aiohttp.ClientTimeout] = (
                None,
                None,
                aiohttp.ClientTimeout(),
            )

        def _open(self) -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # per request: see exchange()
                trust_env=False,  # the environment's proxies are read by ProxyMap
            )
            if hasattr(self._session, "_retry_connection"):
                # aiohttp resends a GET once, unasked, when a pooled connection turns
                # out closed: a request outside the retry policy that takes no
                # rate-limit token.  Every request of ours goes through both.
                self._session._retry_connection = False
            return self._session

        def _context(self) -> ssl.SSLContext:
            """The TLS context (certifi's CA bundle by default), built on first use."""
            if self._tls is None:
                self._tls = ssl_context(lib, True, None, trust_env=self._trust_env)
            return self._tls

        def route(self, url: str) -> Route:
            """The ``Route`` of a request to ``url``: proxy and TLS settled once per URL."""
            target = yarl.URL(url)
            proxy: ProxyRoute | None = self._proxies.route(url)
            tls: ssl.SSLContext | bool = True  # plain HTTP all the way: unused
            if target.scheme == "https" or (proxy is not None and proxy.scheme == "https"):
                tls = self._context()
            return Route(target, tls, proxy)

        def _timeout(self, timeout: dict[str, Any], total: float | None) -> aiohttp.ClientTimeout:
            last = self._last_timeout
            if last[0] is timeout and last[1] == total:
                return last[2]  # the layer passes the same dict and deadline every time
            key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"), total)
            found = self._timeouts.get(key)
            if found is None:
                connect, read, pool, _ = key
                found = aiohttp.ClientTimeout(
                    total=total,
                    # Waiting for a pooled connection, then opening one.
                    connect=None if pool is None or connect is None else pool + connect,
                    sock_connect=connect,
                    sock_read=read,
                    # The deadline exactly: aiohttp would round one of 5 s or more up to
                    # the next whole second of the loop's clock.
                    ceil_threshold=math.inf,
                )
                self._timeouts[key] = found
            self._last_timeout = (timeout, total, found)
            return found

        def prepare(self, url: str, headers: Any) -> tuple[Any, Any]:
            """``url`` and ``headers`` (a mapping or pairs) in aiohttp's own types, with
            the proxy and TLS context of ``url``, for :meth:`exchange`."""
            route = self.route(url)
            prepared = multidict.CIMultiDict(headers)
            if route.authorization is not None:
                prepared["Proxy-Authorization"] = route.authorization
            return route, prepared

        async def _send(
            self,
            method: str,
            route: Route,
            headers: Any,
            data: Any,
            timeouts: dict[str, Any],
            server_hostname: str | None,
        ) -> aiohttp.ClientResponse:
            """Send one request; the answer's status and headers, its body unread."""
            session = self._session or self._open()
            return await session.request(
                method,
                route.url,
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=self._timeout(timeouts, None),
                server_hostname=server_hostname,
                auto_decompress=False,  # decoded by the caller, within a limit
                ssl=route.ssl,
                proxy=route.proxy,
                proxy_headers=route.proxy_headers,
            )

        async def exchange(
            self,
            method: str,
            route: Route,
            headers: Any,
            data: Any,
            timeouts: dict[str, Any],
            *,
            max_bytes: int,
            total: float | None = None,
        ) -> tuple[int, Sequence[tuple[bytes, bytes]], bytes, str | None]:
            """Send one request, read its answer: ``(status, headers, body, problem)``.

            The direct path of the HTTP layer: no ``Request`` or ``Response`` of the
            library is built.  The body is read as a stream and decoded by a
            :class:`~vortext_async._http._body.BodyReader` (at most ``max_bytes`` of a 2xx, an
            excerpt of anything else); past that the connection is dropped and
            ``problem`` says why.  Failures are raised as the library's exceptions, but
            for ``total``: seconds for all of it, past which a bare ``TimeoutError``.
            """
            try:
                # As _send(), inlined: one coroutine less per request.
                answer = await (self._session or self._open()).request(
                    method,
                    route.url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    compress=False,
                    timeout=self._timeout(timeouts, total),
                    auto_decompress=False,  # decoded below, within a limit
                    ssl=route.ssl,
                    proxy=route.proxy,
                    proxy_headers=route.proxy_headers,
                )
                try:
                    raw_headers = answer.raw_headers
                    # aiohttp's parsed headers (a C multidict): no Python loop over them.
                    codings = answer.headers.getall("Content-Encoding", None)
                    encoding = ", ".join(codings) if codings else None
                    limit = body_limit(answer.status, max_bytes)
                    length = answer.content_length
                    if encoding is None and length is not None and length <= limit:
                        # The common case, bounded by its Content-Length (aiohttp reads
                        # exactly that much): one read, no decoder.
                        return answer.status, raw_headers, await answer.read(), None
                    reader = BodyReader(encoding, limit)
                    if reader.complete:
                        async for chunk in answer.content.iter_any():
                            if not reader.feed(chunk):
                                break
                finally:
                    if not answer.content.is_eof():
                        answer.close()  # the rest unread: the connection cannot be reused
                    answer.release()
                return answer.status, raw_headers, reader.body, reader.problem
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                if total is not None and type(error) is TimeoutError:
                    # aiohttp's ``total`` deadline (its own timeouts are subclasses).
                    raise
                raise mapped(error, None) from error

        async def handle_async_request(self, request: Any) -> Any:
            try:
                data = request.content or None
            except lib.RequestNotRead:
                data = request.stream  # a streamed body: aiohttp iterates it
            route, headers = self.prepare(str(request.url), request.headers.multi_items())
            try:
                answer = await self._send(
                    request.method,
                    route,
                    headers,
                    data,
                    request.extensions.get("timeout", {}),
                    request.extensions.get("sni_hostname"),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise mapped(error, request) from error
            extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
            if answer.reason:
                extensions["reason_phrase"] = answer.reason.encode("ascii", "replace")
            # Streamed: the library (and the HTTP layer above it) reads the body as it
            # arrives and may stop early; its Content-Encoding is decoded up there.
            return lib.Response(
                answer.status,
                headers=answer.raw_headers,
                stream=AiohttpStream(answer, request),
                request=request,
                extensions=extensions,
            )

        async def aclose(self) -> None:
            if self._session is not None:
                await self._session.close()
                self._session = None

    AiohttpTransport.__qualname__ = f"AiohttpTransport[{lib.__name__}]"
    return AiohttpTransport
