"""Who sent a push: the peer address, or ``X-Forwarded-For`` from trusted proxies only.

Vortext authenticates nothing, so a receiver may restrict the networks pushes come
from.  Behind a reverse proxy the peer is the proxy; its ``X-Forwarded-For`` is
believed only when the peer is one of the proxies named by the user (off by default,
since any client can write that header).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vortext_async._errors import ConfigurationError

__all__ = ["Address", "Network", "SourceFilter", "parse_address", "parse_networks"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str | Network], what: str) -> tuple[Network, ...]:
    """``["192.0.2.0/24", "2001:db8::1"]`` as networks (a bare address is a /32 or /128)."""
    if isinstance(values, str):
        raise ConfigurationError(f"{what} must be a list of networks, not the string {values!r}")
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value))
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"{what}: {value!r} is not a network ({error})") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An IP address from a peer or a forwarded hop (``1.2.3.4:80``, ``[::1]:80`` too).

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) are read as IPv4; ``None`` when
    ``text`` is not an address (``unknown``, an obfuscated name...).
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class SourceFilter:
    """Decides whether an ASGI request comes from an allowed network."""

    __slots__ = ("allowed", "trusted_proxies")

    def __init__(
        self, allowed: Sequence[Network] | None, trusted_proxies: Sequence[Network]
    ) -> None:
        self.allowed = allowed
        self.trusted_proxies = trusted_proxies

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def source(self, scope: Mapping[str, Any]) -> Address | None:
        """The address the request comes from, or ``None`` when it cannot be known."""
        client = scope.get("client")
        peer = parse_address(str(client[0])) if client else None
        if peer is None or not self._trusted(peer):
            return peer
        hops = [
            hop
            for name, value in scope.get("headers", ())
            if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        # Walk back from the proxy: each trusted hop vouches for the one before it.
        current: Address = peer
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return None
            current = address
            if not self._trusted(address):
                return address
        return current

    def allows(self, scope: Mapping[str, Any]) -> bool:
        """True when no networks are configured or the source is in one of them."""
        if self.allowed is None:
            return True
        source = self.source(scope)
        return source is not None and any(source in network for network in self.allowed)
