"""Outbound URLs that must not reach private networks (SSRF): one vetting for predict sources and webhooks.

A URL is http(s), names a host and carries no credentials; its host is resolved once and every address it
resolves to must be public (unless the operator allows private ones). The connection then goes to the vetted
address, with the Host header and TLS SNI keeping the URL's name, so a DNS answer that changes between the
check and the connection (rebinding) cannot swap the target. Callers re-vet every new target (a redirect,
a retry) before they contact it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Networks whose addresses embed an IPv4 address the vetting must look through.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UrlRefused(Exception):
    """The URL is malformed, unresolvable or points where it may not go; ``message`` says which."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class VettedUrl:
    """A vetted URL and the one address the connection must go to."""

    url: httpx.URL
    address: IPAddress

    def build_request(
        self, client: httpx.AsyncClient, content: bytes | None, headers: dict[str, str], *, method: str = "POST"
    ) -> httpx.Request:
        """A request to the vetted address that still names the URL's host (Host header, TLS SNI)."""
        pinned = self.url.copy_with(host=str(self.address))
        extensions: dict[str, Any] = {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}
        return client.build_request(
            method, pinned, content=content, headers={**headers, "Host": host_header(self.url)}, extensions=extensions
        )


async def vet_url(
    url: str,
    *,
    subject: str = "url",
    allow_private: bool = False,
    allowed_networks: Iterable[IPNetwork] = (),
    resolver: Resolver | None = None,
) -> VettedUrl:
    """Check the URL's shape, resolve its host and refuse it when any address is not permitted.

    ``subject`` names the URL in messages ("source URL is not a valid URL"); private addresses pass when
    ``allow_private`` or when they lie in one of ``allowed_networks``.
    """
    parsed = parse_url(url, subject=subject)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = await (resolver or resolve_host)(parsed.host, port)
    except (OSError, UnicodeError) as error:
        raise UrlRefused(f"{subject} host could not be resolved") from error
    addresses = [ipaddress.ip_address(address.split("%", 1)[0]) for address in found]
    if not addresses:
        raise UrlRefused(f"{subject} host could not be resolved")
    networks = tuple(allowed_networks)
    for address in addresses:
        if not (allow_private or any(address in network for network in networks) or is_public_address(address)):
            raise UrlRefused(f"{subject} points to a private or loopback (non-public) address")
    return VettedUrl(parsed, addresses[0])


def parse_url(url: str, *, subject: str = "url") -> httpx.URL:
    """Parse and check the URL's shape: http(s), a host, no credentials."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise UrlRefused(f"{subject} is not a valid URL") from error
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused(f"{subject} must use http or https")
    if parsed.userinfo:
        raise UrlRefused(f"{subject} must not contain credentials")
    if not parsed.host:
        raise UrlRefused(f"{subject} has no host")
    return parsed


async def resolve_host(host: str, port: int) -> list[str]:
    """All addresses getaddrinfo gives for host (run in the loop's thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is globally routable unicast (embedded IPv4 in mapped/NAT64/6to4 forms checked too)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def host_header(url: httpx.URL) -> str:
    """The Host header for a URL (bracketed IPv6, port only when not the default)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}" if url.port else host
