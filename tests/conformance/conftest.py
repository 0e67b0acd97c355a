"""A live ``yolostack serve`` on loopback per backend, for the real official clients to talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.database import BACKENDS
from tests.fixtures.server import LiveServer, serving


@pytest.fixture(scope="module", params=BACKENDS)
async def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    backend: str = request.param
    async with serving(backend, tmp_path_factory.mktemp(f"live-{backend}")) as server:
        yield server


@pytest.fixture
def admin_key(live_server: LiveServer) -> str:
    assert live_server.key is not None
    return live_server.key


@pytest.fixture
def client_env(live_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """Environment for the clients' own processes: our server's URL, a private Ultralytics config dir."""
    return {
        "ULTRALYTICS_PLATFORM_URL": live_server.base_url,
        "YOLO_CONFIG_DIR": str(tmp_path / "yolo-config"),
        "YOLO_OFFLINE": "1",
    }
