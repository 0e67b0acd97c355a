"""Receiver URLs: http(s) only and, unless the operator allows private ones, public addresses only (SSRF).

A URL is vetted when the webhook is created and again before every attempt (DNS may have changed since).
Each attempt connects to the address that was vetted (Host header and TLS SNI keep the URL's name), so a
DNS answer that changes between the check and the connection cannot redirect the delivery. The address
rules are the ones ``source`` URLs of predict requests follow (``inference.fetch``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import httpx

from yolostack.inference.fetch import IPAddress, Resolver, is_public_address, resolve_host


class TargetRefused(Exception):
    """The URL is malformed, unresolvable or points where webhooks may not go; ``message`` says which."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    """A vetted receiver: its URL and the one address the connection must go to."""

    url: httpx.URL
    address: IPAddress

    def build_request(self, client: httpx.AsyncClient, content: bytes, headers: dict[str, str]) -> httpx.Request:
        """A POST to the vetted address that still names the URL's host (Host header, TLS SNI)."""
        pinned = self.url.copy_with(host=str(self.address))
        host = f"[{self.url.host}]" if ":" in self.url.host else self.url.host
        extensions: dict[str, Any] = {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}
        return client.build_request(
            "POST",
            pinned,
            content=content,
            headers={**headers, "Host": f"{host}:{self.url.port}" if self.url.port else host},
            extensions=extensions,
        )


def parse_url(url: str) -> httpx.URL:
    """Check the URL's shape: http(s), a host, no credentials."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise TargetRefused("url is not a valid URL") from error
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("url must use http or https")
    if parsed.userinfo:
        raise TargetRefused("url must not contain credentials")
    if not parsed.host:
        raise TargetRefused("url has no host")
    return parsed


async def vet_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """Resolve the URL's host; refuse it when any address is not public (unless allowed)."""
    parsed = parse_url(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = await (resolver or resolve_host)(parsed.host, port)
    except (OSError, UnicodeError) as error:
        raise TargetRefused("url host could not be resolved") from error
    addresses = [ipaddress.ip_address(address.split("%", 1)[0]) for address in found]
    if not addresses:
        raise TargetRefused("url host could not be resolved")
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise TargetRefused("url points to a private, loopback or otherwise non-public address")
    return Target(parsed, addresses[0])
