"""SSRF-safe source fetching: private targets are refused on every hop; allowed sources are fetched and bounded.

No internet here: success against a *public* address is exercised with an injected resolver and a mock
transport (which also checks the connection is pinned to the vetted IP); everything else uses real servers on
loopback, admitted through ``allowed_networks`` or ``allow_private``.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from yolostack.inference.fetch import FetchedSource, SourceFetchError, fetch_source

LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.1/32")]
BIG = b"x" * 200_000


def bus_bytes() -> bytes:
    """bus.jpg from the installed ultralytics package, found without importing it (the import takes seconds)."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None
    assert spec.origin is not None
    return (Path(spec.origin).parent / "assets" / "bus.jpg").read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /bus.jpg, /big (with length), /stream (no length), /redirect?to=, /slow, /missing."""

    server: Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        self.server.hosts.append(self.headers.get("Host", ""))
        route = urlsplit(self.path)
        if route.path == "/redirect":
            self._send(302, b"", location=parse_qs(route.query)["to"][0])
        elif route.path in ("/bus.jpg", "/images/bus%20photo.jpg"):
            self._send(200, bus_bytes(), content_type="image/jpeg")
        elif route.path == "/big":
            self._send(200, BIG)
        elif route.path == "/stream":
            self.send_response(200)
            self.end_headers()  # HTTP/1.0 without Content-Length: the body runs until the connection closes
            self.wfile.write(BIG)
        elif route.path == "/slow":
            time.sleep(2)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, b"late")
        else:
            self._send(404, b"missing")

    def _send(self, status: int, body: bytes, *, location: str = "", content_type: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may have given up (timeouts)
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class Server(http.server.ThreadingHTTPServer):
    hits: list[str]
    hosts: list[str]


@dataclass
class Running:
    server: Server
    url: str
    hits: list[str] = field(default_factory=list)


def serve(host: str) -> Iterator[Running]:
    server = Server((host, 0), Handler)
    server.hits, server.hosts = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(server, f"http://{host}:{server.server_address[1]}", server.hits)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[Running]:
    """The allowed source server on 127.0.0.1."""
    yield from serve("127.0.0.1")


@pytest.fixture(scope="module")
def internal() -> Iterator[Running]:
    """A 'private' server on 127.0.0.2 that a redirect must never reach."""
    yield from serve("127.0.0.2")


async def fetch(url: str, **kwargs: object) -> FetchedSource:
    options: dict[str, object] = {"max_bytes": 1_000_000, "timeout_s": 5.0, **kwargs}
    return await fetch_source(url, **options)  # type: ignore[arg-type]


class TestRefusedUrls:
    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/", "javascript:1"])
    async def test_scheme(self, url: str) -> None:
        with pytest.raises(SourceFetchError, match="must use http or https"):
            await fetch(url)

    async def test_credentials(self) -> None:
        with pytest.raises(SourceFetchError, match="credentials"):
            await fetch("http://user:pass@example.com/a.jpg")

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/",
            "http://localhost/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
        ],
    )
    async def test_private_targets(self, url: str) -> None:
        with pytest.raises(SourceFetchError, match="private or loopback") as caught:
            await fetch(url)
        assert caught.value.status_code == 400

    @pytest.mark.parametrize("url", ["http://0177.0.0.1/", "http://0x7f.1/", "http://127.1/"])
    async def test_odd_ipv4_spellings(self, url: str) -> None:
        # httpx rejects some of these spellings outright; either refusal is fine, none may connect.
        with pytest.raises(SourceFetchError, match="private or loopback|not a valid URL"):
            await fetch(url)

    async def test_any_private_address_refuses(self) -> None:
        async def resolver(host: str, port: int) -> list[str]:
            return ["93.184.216.34", "10.1.2.3"]

        with pytest.raises(SourceFetchError, match="private or loopback"):
            await fetch("http://mixed.example/", resolver=resolver)

    async def test_unresolvable(self) -> None:
        async def resolver(host: str, port: int) -> list[str]:
            raise socket.gaierror("no such host")

        with pytest.raises(SourceFetchError, match="could not be resolved"):
            await fetch("http://nowhere.example/", resolver=resolver)


class TestLoopbackServer:
    async def test_fetches_image(self, origin: Running) -> None:
        fetched = await fetch(f"{origin.url}/bus.jpg", allowed_networks=LOOPBACK_ONLY)
        assert fetched.data == bus_bytes()
        assert fetched.filename == "bus.jpg"
        assert fetched.content_type == "image/jpeg"

    async def test_allow_private(self, origin: Running) -> None:
        fetched = await fetch(f"{origin.url}/images/bus%20photo.jpg", allow_private=True)
        assert fetched.filename == "bus_photo.jpg"

    async def test_redirect_on_allowed_host_followed(self, origin: Running) -> None:
        fetched = await fetch(f"{origin.url}/redirect?to=/bus.jpg", allowed_networks=LOOPBACK_ONLY)
        assert fetched.data == bus_bytes()

    @pytest.mark.parametrize("target", ["internal", "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/"])
    async def test_redirect_to_private_target_refused(self, origin: Running, internal: Running, target: str) -> None:
        location = f"{internal.url}/bus.jpg" if target == "internal" else target
        with pytest.raises(SourceFetchError, match="private or loopback"):
            await fetch(f"{origin.url}/redirect?to={location}", allowed_networks=LOOPBACK_ONLY)
        assert internal.hits == []

    async def test_redirect_to_file_scheme_refused(self, origin: Running) -> None:
        with pytest.raises(SourceFetchError, match="must use http or https"):
            await fetch(f"{origin.url}/redirect?to=file:///etc/passwd", allowed_networks=LOOPBACK_ONLY)

    async def test_redirect_loop_stops(self, origin: Running) -> None:
        with pytest.raises(SourceFetchError, match="redirected more than 3 times"):
            await fetch(
                f"{origin.url}/redirect?to=/redirect?to=/redirect?to=/redirect?to=/redirect?to=/bus.jpg",
                allow_private=True,
            )

    async def test_declared_length_over_limit(self, origin: Running) -> None:
        with pytest.raises(SourceFetchError, match="larger than 1000 bytes") as caught:
            await fetch(f"{origin.url}/big", allow_private=True, max_bytes=1000)
        assert caught.value.status_code == 413

    async def test_streamed_body_over_limit(self, origin: Running) -> None:
        with pytest.raises(SourceFetchError, match="larger than 1000 bytes"):
            await fetch(f"{origin.url}/stream", allow_private=True, max_bytes=1000)

    async def test_http_error(self, origin: Running) -> None:
        with pytest.raises(SourceFetchError, match="HTTP 404"):
            await fetch(f"{origin.url}/missing", allow_private=True)

    async def test_timeout(self, origin: Running) -> None:
        started = time.monotonic()
        with pytest.raises(SourceFetchError, match="timed out after 0.5 s"):
            await fetch(f"{origin.url}/slow", allow_private=True, timeout_s=0.5)
        assert time.monotonic() - started < 1.5

    async def test_connection_refused(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(SourceFetchError, match="could not be fetched: connection failed"):
            await fetch(f"http://127.0.0.1:{port}/", allow_private=True)


class TestPinnedPublicAddress:
    """Public targets through injection: the request must go to the vetted IP, named by Host header and SNI."""

    @pytest.mark.parametrize("scheme", ["http", "https"])
    async def test_connects_to_vetted_address(self, scheme: str) -> None:
        seen: list[httpx.Request] = []
        resolutions: list[str] = []

        async def resolver(host: str, port: int) -> list[str]:
            resolutions.append(host)
            return ["93.184.216.34"]

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, content=b"image", headers={"Content-Type": "image/png"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetched = await fetch(f"{scheme}://images.example.com/a/cat.png", resolver=resolver, client=client)
        assert fetched == FetchedSource(b"image", "cat.png", "image/png")
        assert resolutions == ["images.example.com"]
        (request,) = seen
        assert request.url.host == "93.184.216.34"
        assert request.headers["host"] == "images.example.com"
        assert request.extensions.get("sni_hostname") == ("images.example.com" if scheme == "https" else None)

    async def test_rebinding_redirect_is_revetted(self) -> None:
        answers = {"public.example": ["93.184.216.34"], "rebind.example": ["169.254.169.254"]}

        async def resolver(host: str, port: int) -> list[str]:
            return answers[host]

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(302, headers={"Location": "http://rebind.example/latest/meta-data/"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(SourceFetchError, match="private or loopback"):
                await fetch("http://public.example/x.jpg", resolver=resolver, client=client)

    async def test_filename_without_path(self) -> None:
        async def resolver(host: str, port: int) -> list[str]:
            return ["93.184.216.34"]

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=b"v", headers={"Content-Type": "video/mp4"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetched = await fetch("https://cdn.example/", resolver=resolver, client=client)
        assert fetched.filename == "source.mp4"
