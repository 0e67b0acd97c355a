"""Fetch a predict request's ``source`` URL without letting it reach private networks (SSRF-safe).

Every hop is vetted by ``core.urls`` (resolved once, every address public unless allowed) and the connection
goes to the vetted address, so DNS rebinding cannot swap the target after the check; redirects are followed
by hand and re-vetted.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from yolostack.core.urls import IPNetwork, Resolver, UrlRefused, VettedUrl, vet_url

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "yolostack-source-fetch/1"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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
    policy = _Policy(allow_private, tuple(allowed_networks), resolver)
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
    resolver: Resolver | None


async def _follow(client: httpx.AsyncClient, url: str, max_bytes: int, policy: _Policy) -> FetchedSource:
    """Fetch url, following redirects by hand so each new target is vetted before it is contacted."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = await _vet(current, policy)
        result = await _get(client, target, max_bytes)
        if isinstance(result, FetchedSource):
            return result
        current = str(target.url.join(result))
    raise SourceFetchError(f"source redirected more than {MAX_REDIRECTS} times")


async def _vet(url: str, policy: _Policy) -> VettedUrl:
    """The shared vetting, its refusals answered 400."""
    try:
        return await vet_url(
            url,
            subject="source URL",
            allow_private=policy.allow_private,
            allowed_networks=policy.allowed_networks,
            resolver=policy.resolver,
        )
    except UrlRefused as refused:
        raise SourceFetchError(refused.message) from refused


async def _get(client: httpx.AsyncClient, target: VettedUrl, max_bytes: int) -> FetchedSource | str:
    """One pinned GET: a FetchedSource, or the Location of a redirect."""
    headers = {"User-Agent": USER_AGENT, "Accept": "image/*, video/*, */*;q=0.5"}
    try:
        request = target.build_request(client, None, headers, method="GET")
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            return await _read(response, target.url, max_bytes)
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
