"""Receiver URLs: vetted by ``core.urls`` when the webhook is created and again before every attempt (SSRF).

DNS may have changed since the last check; each attempt connects to the address just vetted (Host header and
TLS SNI keep the URL's name), so a DNS answer that changes between the check and the connection cannot
redirect the delivery. Private addresses pass only when the operator allows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from yolostack.core.urls import IPAddress, Resolver, UrlRefused, VettedUrl
from yolostack.core.urls import vet_url as vet


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
        return VettedUrl(self.url, self.address).build_request(client, "POST", headers, content)


async def vet_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """Resolve the URL's host; refuse it when any address is not public (unless allowed)."""
    try:
        vetted = await vet(url, subject="url", allow_private=allow_private, resolver=resolver)
    except UrlRefused as refused:
        raise TargetRefused(refused.message) from refused
    return Target(vetted.url, vetted.address)
