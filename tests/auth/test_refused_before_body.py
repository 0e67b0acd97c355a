"""A missing or wrong key is refused before the body is read: whatever it sends, it costs the server one key
lookup, milliseconds and kilobytes. In process (nothing of the body is pulled) and against a live server (a
300 MB chunked body answered 401 at once, the server's memory flat)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from sqlalchemy import update

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.database import BACKENDS
from tests.fixtures.factories import User, add_key
from tests.fixtures.server import LiveServer, serving
from yolostack.core.crypto import hash_api_key
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.tables import ApiKey

FAKE_KEY = "ul_" + "0" * 40
MiB = 1024**2
HUGE = 300 * MiB


class Untouched:
    """A request body that records whether the server pulled any of it."""

    def __init__(self) -> None:
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for _ in range(1000):
            self.pulled += 1
            yield b'{"name": "' + b"a" * MiB


class TestInProcess:
    @pytest.mark.parametrize("headers", [{}, {"x-api-key": FAKE_KEY}, {"Authorization": "Bearer nope"}], ids=str)
    async def test_wrong_or_missing_key_never_reads_the_body(
        self, client: httpx.AsyncClient, alice: User, headers: dict[str, str]
    ) -> None:
        for path in ("/api/projects", "/api/training/start", "/", "/v1/predict/model_x", "/api/jobs/job_x/events"):
            body = Untouched()
            response = await client.post(
                path, content=body.chunks(), headers={**headers, "content-type": "application/json"}
            )
            assert_error(response, 401, "UNAUTHORIZED")
            assert body.pulled == 0, path
            assert response.headers["x-request-id"]

    async def test_revoked_and_expired_keys_never_read_the_body(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        revoked = await add_key(database, alice)
        expired = await add_key(database, alice, expires_at=utcnow() + timedelta(hours=1))
        async with database.engine.begin() as connection:
            await connection.execute(
                update(ApiKey).where(ApiKey.key_hash == hash_api_key(revoked)).values(revoked_at=utcnow())
            )
            await connection.execute(
                update(ApiKey)
                .where(ApiKey.key_hash == hash_api_key(expired))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        for key, word in ((revoked, "revoked"), (expired, "expired")):
            body = Untouched()
            response = await client.post("/api/projects", content=body.chunks(), headers={"x-api-key": key})
            assert word in assert_error(response, 401, "UNAUTHORIZED")["error"]["message"]
            assert body.pulled == 0

    async def test_a_key_without_the_route_s_scope_never_reads_the_body(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        trash_only = await add_key(database, alice, scopes=["trash"])
        for path in ("/api/projects", "/api/training/start", "/", "/v1/predict/model_x", "/api/api-keys"):
            body = Untouched()
            response = await client.post(
                path,
                content=body.chunks(),
                headers={"Authorization": f"Bearer {trash_only}", "content-type": "application/json"},
            )
            assert "scope" in assert_error(response, 403, "FORBIDDEN")["error"]["message"], path
            assert body.pulled == 0, path
            assert response.headers["x-request-id"]

    async def test_a_key_with_the_scope_gets_its_body_read(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        projects_only = await add_key(database, alice, scopes=["projects"])
        headers = {"Authorization": f"Bearer {projects_only}"}
        created = ok(
            await client.post("/api/projects", json={"project": "scoped", "name": "Scoped"}, headers=headers), 201
        )
        assert created["project"] == "scoped"

    async def test_a_valid_key_is_looked_up_once_and_recorded(self, client: httpx.AsyncClient, alice: User) -> None:
        ok(await client.post("/api/projects", json={"name": "p1"}, headers=alice.headers), 201)
        keys = ok(await client.get("/api/api-keys", headers=alice.headers))["keys"]
        assert keys[0]["lastUsedAt"] is not None


@dataclass
class Answer:
    status: int
    seconds: float  # from the request's headers sent to the response's status line received
    body_bytes_sent: int  # how much of the body the client got into the socket before the answer


def stream_chunked(base_url: str, path: str, headers: dict[str, str], total: int) -> Answer:
    """POST a chunked body of ``total`` bytes from a generator, reading the answer while still sending."""
    parts = urlsplit(base_url)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    payload = b"\r\n".join(line.encode() for line in head) + b"\r\n\r\n"

    def frames() -> Iterator[bytes]:
        piece = b"a" * (256 * 1024)
        yield b'a\r\n{"name": "\r\n'
        for _ in range(total // len(piece)):
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b'2\r\n"}\r\n0\r\n\r\n'

    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(payload)
        started = time.monotonic()
        sock.setblocking(False)
        pending, sent, received = b"", 0, b""
        source: Iterator[bytes] | None = frames()
        while b"\r\n" not in received and time.monotonic() - started < 30:
            readable, writable, _ = select.select([sock], [sock] if source is not None else [], [], 1)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                continue
            if writable and source is not None:
                if not pending:
                    pending = next(source, b"")
                    if not pending:
                        source = None
                        continue
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    source = None
                    continue
                sent, pending = sent + count, pending[count:]
        seconds = time.monotonic() - started
    status_line = received.split(b"\r\n", 1)[0].decode()
    return Answer(status=int(status_line.split()[1]), seconds=seconds, body_bytes_sent=sent)


def server_rss(server: LiveServer) -> int:
    process = psutil.Process(server.process.pid)
    return int(sum(part.memory_info().rss for part in [process, *process.children(recursive=True)]))


@pytest.fixture(scope="module", params=BACKENDS)
async def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    backend: str = request.param
    async with serving(backend, tmp_path_factory.mktemp(f"refusal-{backend}")) as server:
        yield server


class TestLiveServer:
    def test_300_mb_with_a_fake_key_is_refused_at_once_with_memory_flat(self, live: LiveServer) -> None:
        # A first refusal warms the server (its lazy imports, its first database connection).
        assert stream_chunked(live.base_url, "/api/projects", {"x-api-key": FAKE_KEY}, 0).status == 401
        before = server_rss(live)
        for headers in (
            {"x-api-key": FAKE_KEY, "Content-Type": "application/json"},
            {"Content-Type": "application/json"},
        ):
            answer = stream_chunked(live.base_url, "/api/projects", headers, HUGE)
            assert answer.status == 401, answer
            assert answer.seconds < 0.5, answer
            assert answer.body_bytes_sent < 32 * MiB, answer  # socket buffers at most: the server read none of it
        grown = server_rss(live) - before
        assert grown < 20 * MiB, f"the server grew by {grown / MiB:.1f} MiB"
        # And it still serves.
        assert (
            httpx.get(f"{live.base_url}/api/account/summary", headers={"x-api-key": live.key or ""}).status_code == 200
        )

    def test_300_mb_with_a_valid_key_stops_at_the_json_cap(self, live: LiveServer) -> None:
        before = server_rss(live)
        headers = {"x-api-key": live.key or "", "Content-Type": "application/json"}
        answer = stream_chunked(live.base_url, "/api/projects", headers, HUGE)
        assert answer.status == 413, answer
        assert answer.seconds < 2, answer
        assert answer.body_bytes_sent < 64 * MiB, answer
        grown = server_rss(live) - before
        assert grown < 40 * MiB, f"the server grew by {grown / MiB:.1f} MiB"
