"""Where export sinks may point: an egress policy checked when a sink is set and again on every
socket the exporter opens.

A tenant chooses its sink's ``endpoint_url``, and the exporter (inside the operator's network)
connects there. Without a check that is a server-side request forgery: the tenant reaches the
host's loopback services, the cloud metadata service or the private network. So every address a
sink's host resolves to must be globally routable and not one of this host's own, unless the
operator allow-lists its network. The check runs on the exporter's actual connections (DNS is
resolved once per connection, every address checked, and the socket opened to a checked address
only), so a name that resolves to a public address when the sink is set and to a private one
later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses to connect to, as getaddrinfo would answer.
Resolver = Callable[[str, int], Sequence[str]]

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # CGNAT, RFC 6598
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: an IPv4 address in its low bits


class EndpointNotAllowed(Exception):
    """The endpoint's host resolves to an address sinks may not reach (``reason`` says which
    class, never which address: the tenant learns nothing about the operator's DNS)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"endpoint address not allowed ({reason})")
        self.reason = reason


class InvalidEndpoint(ValueError):
    """The endpoint URL is not an http(s) URL a sink can use."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, as the socket layer would try them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _host_addresses() -> set[IPAddress]:
    """Every address of this host's interfaces (a sink there would reach the host's own
    services, e.g. through its public address)."""
    addresses: set[IPAddress] = set()
    for interface_addresses in psutil.net_if_addrs().values():
        for entry in interface_addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    addresses.add(ipaddress.ip_address(entry.address.split("%", 1)[0]))
                except ValueError:
                    continue
    return addresses


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), which is where a packet
    to it ends up."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_class(address: IPAddress) -> str | None:
    """Why a sink may not reach ``address`` (its class), or None for a public address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = address_class(embedded)
        return f"IPv4-in-IPv6 {reason}" if reason else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED_ADDRESS_SPACE:
        return "shared (CGNAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses export sinks may connect to: public ones, plus the operator's
    ``allowed_networks`` (e.g. an S3-compatible store on the private network).
    ``resolver`` is a seam for tests (simulating DNS rebinding); the check itself is not."""

    allowed_networks: Sequence[IPNetwork] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused, or None when a sink may connect to it."""
        embedded = _embedded_ipv4(address)
        for network in self.allowed_networks:
            if address in network or (embedded is not None and embedded in network):
                return None
        reason = address_class(address)
        if reason is not None:
            return f"{reason} address"
        if address in _host_addresses() or (embedded is not None and embedded in _host_addresses()):
            return "an address of this host"
        return None

    def allowed_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and return its addresses, all checked. One forbidden address
        refuses the host (``EndpointNotAllowed``): a name that resolves to a public and a
        private address must not reach the private one on a retry. A name that does not
        resolve raises ``socket.gaierror``."""
        host = host.strip("[]")
        try:
            answers: Iterable[str] = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
        except ValueError:
            answers = self.resolver(host, port)
        addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in answers))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise EndpointNotAllowed(reason)
        return addresses


def parse_endpoint_url(url: str) -> SplitResult:
    """``url`` split, if it is an absolute http(s) URL with a host, no credentials, query or
    fragment, and a valid port; ``InvalidEndpoint`` saying what is wrong otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise InvalidEndpoint(f"endpoint_url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpoint("endpoint_url must be an http(s) URL such as https://s3.example.com")
    if "@" in parts.netloc:
        raise InvalidEndpoint("endpoint_url must not carry user information (user:password@)")
    if parts.query or parts.fragment:
        raise InvalidEndpoint("endpoint_url must not have a query or fragment")
    if port == 0:
        raise InvalidEndpoint("endpoint_url port must be 1-65535")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidEndpoint("endpoint_url must not contain spaces or control characters")
    return parts
