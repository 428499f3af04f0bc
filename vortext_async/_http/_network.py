"""The network options of a client: proxy, TLS verification, client certificate, environment.

``VortextClient(proxy=..., verify=..., cert=..., trust_env=...)`` means what it means in
httpx, on every transport.  This module turns those options into what a transport
needs with the chosen library's own code, so the rules are the library's: its public
``create_ssl_context`` and ``Proxy``, and for the environment its private
``_utils.get_environment_proxies`` and ``URLPattern`` (the very code its clients run;
a rename upstream breaks ``trust_env`` here loudly, never silently):

- TLS: :func:`ssl_context` builds one ``ssl.SSLContext`` with the library's
  ``create_ssl_context`` (certifi's CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``
  with ``trust_env``), a CA bundle path or an ``SSLContext`` of the caller's, and the
  client certificate loaded into it;
- proxies: :class:`ProxyMap` answers "which proxy for this URL": an explicit
  ``proxy=`` for every URL, else (``trust_env``) ``HTTP_PROXY``, ``HTTPS_PROXY``,
  ``ALL_PROXY`` and ``NO_PROXY`` read and matched by the library's own functions, so
  the semantics are exactly httpx's (or httpx2's).

A proxy's credentials leave the URL at once: the map keeps the URL without them and
a ``Proxy-Authorization`` value whose ``repr`` is redacted (:class:`SecretStr`).
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from vortext_async._errors import ConfigurationError
from vortext_async._redact import redact_url

from ._secret import SecretStr

if TYPE_CHECKING:
    from types import ModuleType

    import httpx
    import httpx2

__all__ = [
    "SOCKS_SCHEMES",
    "Cert",
    "ProxyMap",
    "ProxyRoute",
    "ProxyUrl",
    "Verify",
    "ssl_context",
]

Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext
"""True (certifi's CA bundle, as httpx), False (no verification), a CA bundle file or
directory, or an ``ssl.SSLContext``."""

Cert: TypeAlias = str | tuple[str, str] | tuple[str, str, str]
"""A client certificate: a PEM file holding the certificate and its key, or
``(certificate file, key file)``, or ``(certificate file, key file, password)``."""

ProxyUrl: TypeAlias = Union[str, "httpx.URL", "httpx2.URL"]
"""A proxy's URL (``http://``, ``https://``, ``socks5://``), credentials allowed."""

SOCKS_SCHEMES = frozenset({"socks5", "socks5h"})
"""Proxy schemes only httpcore speaks (with ``socksio`` installed)."""


def ssl_context(
    lib: ModuleType, verify: Verify, cert: Cert | None, *, trust_env: bool
) -> ssl.SSLContext:
    """The ``SSLContext`` for ``verify`` and ``cert``, the way ``lib`` would build it."""
    if isinstance(verify, bool | ssl.SSLContext):
        context: ssl.SSLContext = lib.create_ssl_context(verify=verify, trust_env=trust_env)
    elif isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        try:
            if os.path.isdir(path):
                context = ssl.create_default_context(capath=path)
            else:
                context = ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(
                f"verify={path!r}: cannot load this CA bundle ({error})"
            ) from None
    else:
        raise ConfigurationError(
            "verify must be True, False, a CA bundle path or an ssl.SSLContext, "
            f"not {type(verify).__name__}"
        )
    if cert is not None:
        files = (cert,) if isinstance(cert, str) else tuple(cert)
        if not files or not all(isinstance(part, str) for part in files) or len(files) > 3:
            raise ConfigurationError(
                "cert must be a PEM file, (certificate file, key file) or "
                "(certificate file, key file, password)"
            )
        try:
            context.load_cert_chain(*files)
        except (OSError, ssl.SSLError) as error:
            # The error text names neither the password nor the key.
            raise ConfigurationError(
                f"cert={files[0]!r}: cannot load this client certificate ({type(error).__name__})"
            ) from None
    return context


class ProxyRoute:
    """The proxy of one request: its URL (without credentials) and its authorization."""

    __slots__ = ("authorization", "scheme", "url")

    def __init__(self, url: str, scheme: str, authorization: SecretStr | None) -> None:
        self.url = url
        """The proxy's URL, credentials removed."""
        self.scheme = scheme
        """``http``, ``https``, ``socks5`` or ``socks5h``."""
        self.authorization = authorization
        """The ``Proxy-Authorization`` value (redacted in a ``repr``), if any."""

    def __repr__(self) -> str:
        return f"<ProxyRoute {self.url}>"


def _route(lib: ModuleType, url: ProxyUrl) -> ProxyRoute:
    """``url`` parsed by ``lib.Proxy`` (which takes the credentials out of it)."""
    reason = None
    try:
        proxy = lib.Proxy(url=url)
    except (ValueError, TypeError) as error:
        reason = type(error).__name__  # its text and frames hold the URL: left behind
    if reason is not None:
        shown = redact_url(str(url))
        raise ConfigurationError(
            f"proxy={shown!r} is not a proxy URL (http://, https:// or socks5://): {reason}"
        )
    authorization = None
    if proxy.auth is not None:
        import base64

        user, password = proxy.auth
        authorization = SecretStr(
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        )
    return ProxyRoute(str(proxy.url), proxy.url.scheme, authorization)


class ProxyMap:
    """Which proxy carries a request to a URL: httpx's rules, for any transport.

    An explicit ``proxy`` carries every request (the environment is then ignored, as in
    httpx); else, with ``trust_env``, the proxies of the environment, matched by the
    library's own ``NO_PROXY`` and scheme rules; else none.  Answers are cached per
    origin (scheme, host, port).
    """

    __slots__ = ("_cache", "_lib", "_patterns", "_routes", "explicit")

    def __init__(self, lib: ModuleType, *, proxy: ProxyUrl | None, trust_env: bool) -> None:
        self._lib = lib
        self._cache: dict[tuple[str, str, int | None], ProxyRoute | None] = {}
        self._patterns: list[Any] = []
        self._routes: dict[Any, ProxyRoute | None] = {}
        self.explicit: ProxyRoute | None = None
        """The route of an explicit ``proxy=``, if one was given."""
        if proxy is not None:
            self.explicit = _route(lib, proxy)
        elif trust_env:
            # The library's own reading of the environment (httpx's _utils: not in its
            # public API, but the very code its clients run, so the rules match).
            found: dict[str, str | None] = lib._utils.get_environment_proxies()
            for key, url in found.items():
                pattern = lib._utils.URLPattern(key)
                self._patterns.append(pattern)
                self._routes[pattern] = None if url is None else _route(lib, url)
            self._patterns.sort()

    @property
    def any_socks(self) -> bool:
        """True when some request would go through a SOCKS proxy."""
        routes = [self.explicit, *self._routes.values()]
        return any(route is not None and route.scheme in SOCKS_SCHEMES for route in routes)

    def route(self, url: str) -> ProxyRoute | None:
        """The proxy for a request to ``url``, or None to connect directly."""
        if self.explicit is not None:
            return self.explicit
        if not self._patterns:
            return None
        parsed = self._lib.URL(url)
        key = (parsed.scheme, parsed.host, parsed.port)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = None
        for pattern in self._patterns:
            if pattern.matches(parsed):
                found = self._routes[pattern]
                break
        self._cache[key] = found
        return found

    def __repr__(self) -> str:
        if self.explicit is not None:
            return f"<ProxyMap all: {self.explicit.url}>"
        return f"<ProxyMap {len(self._patterns)} rules from the environment>"
