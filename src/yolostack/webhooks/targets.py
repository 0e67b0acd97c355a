"""Receiver URLs: vetted by ``core.urls`` when the webhook is created and again before every attempt (SSRF).

DNS may have changed since the last check; each attempt connects to the address just vetted (Host header and
TLS SNI keep the URL's name), so a DNS answer that changes between the check and the connection cannot
redirect the delivery. Private addresses pass only when the operator allows them.
"""

from __future__ import annotations

from yolostack.core import urls
from yolostack.core.urls import Resolver, VettedUrl

# A refused receiver URL; ``message`` says why (malformed, unresolvable, or not a public address).
TargetRefused = urls.UrlRefused


async def vet_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> VettedUrl:
    """The receiver pinned to its vetted address; deliveries POST to it with ``build_request``."""
    return await urls.vet_url(url, subject="url", allow_private=allow_private, resolver=resolver)
