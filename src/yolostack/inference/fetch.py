"""Fetch a predict request's ``source`` URL without letting it reach private networks (SSRF-safe).

Every hop is resolved once, every resolved address is vetted, and the connection goes to the vetted address
(Host header and TLS SNI keep the original name), so DNS rebinding cannot swap the target after the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import mimetypes
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "yolostack-source-fetch/1"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Networks whose addresses embed an IPv4 address the vetting must look through.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class SourceFetchError(Exception):
    """A source URL was refused or could not be fetched; status_code is what the API should answer."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        self.message = message
        self.status_code = status_code
        super().__init__(message)


@dataclass(frozen=True)
class FetchedSource:
    """The fetched body, a safe filename (last path segment) and the declared content type."""

    data: bytes
    filename: str
    content_type: str


async def fetch_source(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool = False,
    allowed_networks: Iterable[IPNetwork] = (),
    client: httpx.AsyncClient | None = None,
    resolver: Resolver | None = None,
) -> FetchedSource:
    """GET a public http(s) URL (following up to 3 re-vetted redirects) into memory, at most max_bytes."""
    policy = _Policy(allow_private, tuple(allowed_networks), resolver or resolve_host)
    try:
        async with asyncio.timeout(timeout_s):
            if client is not None:
                return await _follow(client, url, max_bytes, policy)
            async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout_s) as own:
                return await _follow(own, url, max_bytes, policy)
    except TimeoutError:
        raise SourceFetchError(f"source timed out after {timeout_s:g} s", 504) from None


@dataclass(frozen=True)
class _Policy:
    allow_private: bool
    allowed_networks: tuple[IPNetwork, ...]
    resolver: Resolver


async def resolve_host(host: str, port: int) -> list[str]:
    """All addresses getaddrinfo gives for host (run in the loop's thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _follow(client: httpx.AsyncClient, url: str, max_bytes: int, policy: _Policy) -> FetchedSource:
    """Fetch url, following redirects by hand so each new target is vetted before it is contacted."""
    current = _parse(url)
    for _ in range(MAX_REDIRECTS + 1):
        address = await _vet(current, policy)
        result = await _get(client, current, address, max_bytes)
        if isinstance(result, FetchedSource):
            return result
        current = _parse(str(current.join(result)))
    raise SourceFetchError(f"source redirected more than {MAX_REDIRECTS} times")


def _parse(url: str) -> httpx.URL:
    """Parse and check the URL's shape: http(s), a host, no credentials."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise SourceFetchError("source URL is not a valid URL") from e
    if parsed.scheme not in ("http", "https"):
        raise SourceFetchError("source URL must use http or https")
    if parsed.userinfo:
        raise SourceFetchError("source URL must not contain credentials")
    if not parsed.host:
        raise SourceFetchError("source URL has no host")
    return parsed


async def _vet(url: httpx.URL, policy: _Policy) -> IPAddress:
    """Resolve the host; refuse if any address is not public (unless allowed); return the address to use."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = await policy.resolver(url.host, port)
    except (OSError, UnicodeError) as e:
        raise SourceFetchError("source host could not be resolved", 400) from e
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    if not addresses:
        raise SourceFetchError("source host could not be resolved", 400)
    for address in addresses:
        if not _permitted(address, policy):
            raise SourceFetchError("source URL points to a private or loopback address")
    return addresses[0]


def _permitted(address: IPAddress, policy: _Policy) -> bool:
    """Public addresses always; private ones only when allowed (globally or by network)."""
    if policy.allow_private or any(address in network for network in policy.allowed_networks):
        return True
    return is_public_address(address)


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


async def _get(client: httpx.AsyncClient, url: httpx.URL, address: IPAddress, max_bytes: int) -> FetchedSource | str:
    """One pinned GET: a FetchedSource, or the Location of a redirect."""
    pinned = url.copy_with(host=str(address))
    headers = {"Host": _host_header(url), "User-Agent": USER_AGENT, "Accept": "image/*, video/*, */*;q=0.5"}
    extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
    try:
        request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            return await _read(response, url, max_bytes)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as e:
        raise SourceFetchError(f"source could not be fetched: {_describe(e)}", 502) from e


async def _read(response: httpx.Response, url: httpx.URL, max_bytes: int) -> FetchedSource | str:
    """Check status and size, then stream the body, aborting past max_bytes."""
    if response.status_code in REDIRECT_STATUSES and response.headers.get("location"):
        return response.headers["location"]
    if not 200 <= response.status_code < 300:
        raise SourceFetchError(f"source could not be fetched: HTTP {response.status_code}", 502)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise SourceFetchError(f"source is larger than {max_bytes} bytes", 413)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise SourceFetchError(f"source is larger than {max_bytes} bytes", 413)
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return FetchedSource(data=bytes(body), filename=_filename(url, content_type), content_type=content_type)


def _host_header(url: httpx.URL) -> str:
    """The Host header for the original URL (bracketed IPv6, port only when not the default)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}" if url.port else host


def _filename(url: httpx.URL, content_type: str) -> str:
    """The last path segment made safe; a name from the content type when the path has none."""
    segment = unquote(url.path.rsplit("/", 1)[-1])
    name = _SAFE_NAME.sub("_", segment).lstrip("._")[:200]
    if not name:
        extension = (mimetypes.guess_extension(content_type) or "") if content_type else ""
        name = f"source{extension}"
    return name


def _describe(error: httpx.HTTPError) -> str:
    """A short, path-free reason for a transport failure."""
    if isinstance(error, httpx.ConnectError):
        return "connection failed"
    if isinstance(error, httpx.RemoteProtocolError):
        return "invalid response"
    return type(error).__name__
