"""The ``ray`` deployment backend against the real Ray head that ``scripts/services`` runs on loopback.

Replicas download a converted yolo11n from a loopback file server of the test's own that checks the
bearer token, exactly as they download it from the API server. One application serves most tests
(ready → predict → take-over → replace under load → resize → remove); cold start and a failing model
get applications of their own. The config and the unreachable-cluster tests need no cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import importlib.util
import json
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.checkpoints import Checkpoints
from tests.fixtures.checkpoints import checkpoints as checkpoints
from tests.fixtures.server import free_port
from tests.worker.ray_cluster import RayCluster, ray_cluster
from yolostack.config import DeploymentSettings, InferenceSettings
from yolostack.deployments import ray as ray_backend
from yolostack.deployments.backends import BackendState, ReplicaPlan, ReplicaUnavailable
from yolostack.deployments.ray import DEPLOYMENT_NAME, IMPORT_PATH, RayServeBackend
from yolostack.deployments.replica import REPLICA_HEADER
from yolostack_engine.convert import convert_checkpoint

live = [pytest.mark.slow, pytest.mark.ray]

TOKEN = secrets.token_hex(16)
# Applications of these tests are named so: leftovers of an interrupted run are removed at the next.
PREFIX = "rs-test-"
ARTIFACTS = ("model.onnx", "meta.json")


class Events:
    """An ``EventSink`` that keeps what the backend logged."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def event(self, deployment_id: str, severity: str, message: str) -> None:
        self.lines.append((deployment_id, severity, message))

    def of(self, deployment_id: str) -> list[str]:
        return [f"{severity} {message}" for name, severity, message in self.lines if name == deployment_id]


class ArtifactServer:
    """Serves a model directory at ``{url}/{name}`` to callers with ``Authorization: Bearer TOKEN``."""

    def __init__(self, directory: Path) -> None:
        self.requests: list[tuple[str, bool]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                server.requests.append((self.path, authorized))
                path = directory / self.path.rsplit("/", 1)[-1]
                if not authorized or not path.is_file():
                    self.send_response(401 if not authorized else 404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # a replica stopped mid-download
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/artifacts"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def settings(**overrides: Any) -> DeploymentSettings:
    values: dict[str, Any] = {
        "ray_serve_url": os.environ.get("YOLOSTACK_TEST_RAY_SERVE_URL", "http://127.0.0.1:8100"),
        # Replicas take no CPU from the 2-CPU head (its jobs tests need them).
        "ray_replica_cpus": 0,
        "upscale_delay_seconds": 1,
        # No replica goes while the tests compare replica ids.
        "downscale_delay_seconds": 60,
        "interval_seconds": 0.2,
    }
    return DeploymentSettings(**(values | overrides))


def plan(deployment_id: str, url: str, generation: int = 1, **fields: Any) -> ReplicaPlan:
    values: dict[str, Any] = {
        "min_instances": 1,
        "max_instances": 2,
        "cpu": 1,
        "memory_gi": 1,
        "region": "local",
        "model_dir": None,
        "artifact_url": url,
        "artifact_token": TOKEN,
        "artifact_files": ARTIFACTS,
        "version": "v1",
        "metadata": {"model": "m"},
        "inference": InferenceSettings(),
    }
    return ReplicaPlan(deployment_id=deployment_id, generation=generation, **(values | fields))


def ultralytics_asset(name: str) -> Path:
    """A sample image of the ultralytics package (found without importing it: it imports torch)."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "assets" / name


def predict_body(**fields: str) -> tuple[bytes, dict[str, str]]:
    """A multipart predict body with bus.jpg, as the API server relays it."""
    image = ultralytics_asset("bus.jpg").read_bytes()
    request = httpx.Request("POST", "http://replica/predict", files={"file": ("bus.jpg", image)}, data=fields)
    return request.read(), {"content-type": request.headers["content-type"], "x-request-id": secrets.token_hex(4)}


async def until(
    backend: RayServeBackend, deployment_id: str, done: Callable[[BackendState], bool], timeout: float = 120
) -> BackendState:
    """Tick the backend as the reconciler does until the deployment's state satisfies ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        await backend.tick()
        state = await backend.state(deployment_id)
        if done(state):
            return state
        assert time.monotonic() < deadline, f"{deployment_id} still {state} after {timeout:g} s"
        await asyncio.sleep(0.2)


def applications(cluster: RayCluster) -> dict[str, Any]:
    with cluster.http() as http:
        response = http.get("/api/serve/applications/")
    assert response.status_code == 200, response.text
    apps: dict[str, Any] = response.json()["applications"]
    return apps


def replica_ids(cluster: RayCluster, deployment_id: str) -> set[str]:
    replicas = applications(cluster)[deployment_id]["deployments"][DEPLOYMENT_NAME]["replicas"]
    return {replica["replica_id"] for replica in replicas if replica["state"] == "RUNNING"}


@pytest.fixture(scope="module")
def cluster() -> RayCluster:
    return ray_cluster()


@pytest.fixture(scope="module")
def artifacts(
    cluster: RayCluster, checkpoints: Checkpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArtifactServer]:
    """The converted model on a loopback file server (after the cluster check: converting takes a while)."""
    model_dir = tmp_path_factory.mktemp("ray-serve") / "model"
    convert_checkpoint(checkpoints.detect, model_dir)
    server = ArtifactServer(model_dir)
    yield server
    server.close()


@dataclass
class Served:
    cluster: RayCluster
    backend: RayServeBackend
    events: Events
    deployment_id: str
    artifacts: ArtifactServer


async def remove_and_close(backend: RayServeBackend, cluster: RayCluster, *names: str) -> None:
    for name in names:
        await backend.remove(name)
    await backend.close()
    deadline = time.monotonic() + 60
    while set(names) & set(applications(cluster)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def served(cluster: RayCluster, artifacts: ArtifactServer) -> AsyncIterator[Served]:
    """One application (min 1, max 2) of the module's backend, ready."""
    events = Events()
    backend = RayServeBackend(settings(), cluster.address, cluster.token, events)
    deployment_id = f"{PREFIX}{secrets.token_hex(3)}"
    await backend.apply(plan(deployment_id, artifacts.url))
    leftovers = {name for name in backend.deployments() if name.startswith(PREFIX)} - {deployment_id}
    for name in leftovers:
        await backend.remove(name)
    await until(backend, deployment_id, lambda state: state.phase == "ready")
    try:
        yield Served(cluster, backend, events, deployment_id, artifacts)
    finally:
        await remove_and_close(backend, cluster, deployment_id)


async def predict(served: Served, **fields: str) -> dict[str, Any]:
    body, headers = predict_body(**fields)
    forwarded = await served.backend.forward(served.deployment_id, body, headers, timeout=60)
    assert forwarded.status_code == 200, forwarded.body[:500]
    assert forwarded.headers["content-type"] == "application/json"
    result: dict[str, Any] = httpx.Response(200, content=forwarded.body).json()
    result["replica"] = forwarded.headers[REPLICA_HEADER]
    return result


class TestServedApplication:
    pytestmark = live

    async def test_becomes_ready_and_predicts_a_real_image(self, served: Served) -> None:
        state = await served.backend.state(served.deployment_id)
        assert (state.phase, state.serving_generation, state.message) == ("ready", 1, None)
        assert state.instances == 1
        result = await predict(served, conf="0.01")
        assert result["success"] is True
        assert len(result["images"]) == 1
        assert result["images"][0]["shape"] == [1080, 810]
        assert result["metadata"]["deployment"] == served.deployment_id
        assert result["metadata"]["version"]["weights"] == "v1"
        assert result["metadata"]["model"] == "m"
        assert result["replica"]
        assert "INFO ray serve: generation 1 running on 1 replica(s)" in served.events.of(served.deployment_id)

    def test_replicas_download_the_model_with_the_token(self, served: Served) -> None:
        fetched = {path.rsplit("/", 1)[-1] for path, authorized in served.artifacts.requests if authorized}
        assert fetched == set(ARTIFACTS)
        assert all(authorized for _, authorized in served.artifacts.requests)
        assert httpx.get(f"{served.artifacts.url}/model.onnx").status_code == 401

    def test_serve_config_reflects_the_plan_and_settings(self, served: Served) -> None:
        app = applications(served.cluster)[served.deployment_id]
        assert app["route_prefix"] == f"/{served.deployment_id}"
        assert app["deployed_app_config"]["import_path"] == IMPORT_PATH
        config = app["deployments"][DEPLOYMENT_NAME]["deployment_config"]
        autoscaling = config["autoscaling_config"]
        assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
        assert autoscaling["target_ongoing_requests"] == DeploymentSettings().target_ongoing_requests
        assert (autoscaling["upscale_delay_s"], autoscaling["downscale_delay_s"]) == (1, 60)
        assert config["max_ongoing_requests"] == DeploymentSettings().max_ongoing_requests
        assert config["ray_actor_options"]["num_cpus"] == 0
        assert config["user_config"] == {"generation": 1}

    async def test_a_restarted_server_takes_over_without_restarting_replicas(self, served: Served) -> None:
        before = replica_ids(served.cluster, served.deployment_id)
        events = Events()
        restarted = RayServeBackend(settings(), served.cluster.address, served.cluster.token, events)
        try:
            await restarted.tick()
            assert served.deployment_id in restarted.deployments()
            # A fresh artifact token (the reconciler signs a new one) must not restart the replicas.
            await restarted.apply(plan(served.deployment_id, served.artifacts.url, artifact_token="fresh"))
            state = await until(restarted, served.deployment_id, lambda state: state.phase == "ready", timeout=30)
        finally:
            await restarted.close()
        assert state.serving_generation == 1
        assert replica_ids(served.cluster, served.deployment_id) == before
        assert "INFO ray serve: took over the running application (generation 1)" in events.of(served.deployment_id)

    async def test_replace_under_load_fails_no_request(self, served: Served) -> None:
        body, headers = predict_body(imgsz="320")
        outcomes: Counter[str] = Counter()
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                try:
                    forwarded = await served.backend.forward(served.deployment_id, body, headers, timeout=60)
                except ReplicaUnavailable as error:
                    outcomes[f"unavailable: {error}"] += 1
                    continue
                weights = httpx.Response(200, content=forwarded.body).json().get("metadata", {}).get("version", {})
                outcomes[f"{forwarded.status_code} {weights.get('weights')}"] += 1

        loaders = [asyncio.create_task(load()) for _ in range(3)]
        try:
            await asyncio.sleep(1)
            await served.backend.apply(plan(served.deployment_id, served.artifacts.url, 2, version="v2"))
            state = await until(served.backend, served.deployment_id, lambda state: state.serving_generation == 2)
            await asyncio.sleep(1)
        finally:
            stop.set()
            await asyncio.gather(*loaders)
        assert state.phase == "ready"
        assert set(outcomes) == {"200 v1", "200 v2"}, outcomes
        assert (await predict(served))["metadata"]["version"]["weights"] == "v2"
        assert "INFO ray serve: rolling out generation 2 (v2)" in served.events.of(served.deployment_id)

    async def test_resize_restarts_no_replica(self, served: Served) -> None:
        before = replica_ids(served.cluster, served.deployment_id)
        resized = plan(served.deployment_id, served.artifacts.url, 3, version="v2", max_instances=3)
        await served.backend.apply(resized)
        state = await until(served.backend, served.deployment_id, lambda state: state.serving_generation == 3)
        assert state.phase == "ready"
        assert replica_ids(served.cluster, served.deployment_id) == before
        config = applications(served.cluster)[served.deployment_id]["deployments"][DEPLOYMENT_NAME]
        assert config["deployment_config"]["autoscaling_config"]["max_replicas"] == 3

    async def test_remove_leaves_nothing(self, served: Served) -> None:
        await served.backend.remove(served.deployment_id)
        assert served.deployment_id not in served.backend.deployments()
        assert (await served.backend.state(served.deployment_id)).phase == "absent"
        with pytest.raises(ReplicaUnavailable):
            await predict(served)
        deadline = time.monotonic() + 60
        while served.deployment_id in applications(served.cluster):
            assert time.monotonic() < deadline, "Serve still has the application"
            await asyncio.sleep(0.5)
        assert "INFO ray serve: deleting the application" in served.events.of(served.deployment_id)


class TestOwnApplications:
    pytestmark = live

    async def test_min_zero_scales_to_zero_and_cold_starts(
        self, cluster: RayCluster, artifacts: ArtifactServer
    ) -> None:
        backend = RayServeBackend(settings(scale_to_zero_delay_seconds=1), cluster.address, cluster.token, Events())
        deployment_id = f"{PREFIX}{secrets.token_hex(3)}"
        try:
            await backend.apply(plan(deployment_id, artifacts.url, min_instances=0, max_instances=1))
            autoscaling = applications(cluster)[deployment_id]["deployed_app_config"]["deployments"][0]
            assert autoscaling["autoscaling_config"]["downscale_to_zero_delay_s"] == 1
            # One replica proves the model loads, then goes.
            await until(backend, deployment_id, lambda state: state.phase == "ready" and state.instances == 1)
            await until(backend, deployment_id, lambda state: state.instances == 0, timeout=60)
            body, headers = predict_body()
            forwarded = await backend.forward(deployment_id, body, headers, timeout=120)
            assert forwarded.status_code == 200, forwarded.body[:500]
        finally:
            await remove_and_close(backend, cluster, deployment_id)

    async def test_a_model_that_cannot_load_fails_with_the_reason(
        self, cluster: RayCluster, artifacts: ArtifactServer
    ) -> None:
        events = Events()
        backend = RayServeBackend(settings(), cluster.address, cluster.token, events)
        deployment_id = f"{PREFIX}{secrets.token_hex(3)}"
        try:
            await backend.apply(plan(deployment_id, artifacts.url, artifact_token="wrong"))
            state = await until(backend, deployment_id, lambda state: state.phase != "deploying")
            assert state.phase == "failed"
            assert state.message is not None
            assert "downloading model.onnx" in state.message
            assert "HTTP 401" in state.message
            with pytest.raises(ReplicaUnavailable, match="HTTP 401"):
                await backend.forward(deployment_id, *predict_body(), timeout=10)
            assert any(line.startswith("ERROR ray serve: deployment failed") for line in events.of(deployment_id))
        finally:
            await remove_and_close(backend, cluster, deployment_id)


class TestUnreachableCluster:
    async def test_plans_are_kept_and_nothing_raises(self) -> None:
        events = Events()
        address = f"http://127.0.0.1:{free_port()}"
        options = settings(ray_serve_url=f"http://127.0.0.1:{free_port()}", queue_timeout_seconds=0.5)
        backend = RayServeBackend(options, address, "token", events)
        try:
            await backend.apply(plan("dep", "http://127.0.0.1:9/artifacts"))
            await backend.tick()
            state = await backend.state("dep")
            assert state.phase == "deploying"
            assert state.message is not None
            assert "does not answer" in state.message
            assert backend.deployments() == {"dep"}
            with pytest.raises(ReplicaUnavailable, match="queue timeout"):
                await backend.forward("dep", *predict_body(), timeout=5)
            assert any("does not answer" in line for line in events.of("dep"))
        finally:
            await backend.close()


class FakeServe:
    """Serve's REST API as a mock transport: keeps the last config PUT and lists its applications."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []
        self.applications: dict[str, Any] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            config = json.loads(request.content)
            self.puts.append(config)
            self.applications = {
                app["name"]: {"status": "RUNNING", "deployed_app_config": app, "deployments": {}}
                for app in config["applications"]
            }
            return httpx.Response(200)
        return httpx.Response(200, json={"applications": self.applications})


class TestLostApplications:
    async def test_an_application_the_cluster_lost_is_deployed_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(ray_backend, "LOST_AFTER_SECONDS", 0.0)
        serve = FakeServe()
        events = Events()
        backend = RayServeBackend(settings(), "http://ray", None, events)
        backend._control = httpx.AsyncClient(base_url="http://ray", transport=httpx.MockTransport(serve.handle))
        try:
            await backend.apply(plan("dep", "http://api/dep"))
            await backend.tick()
            assert len(serve.puts) == 1
            serve.applications = {}  # Serve restarted without its applications
            await backend.tick()
            assert len(serve.puts) == 2
            assert [app["name"] for app in serve.puts[1]["applications"]] == ["dep"]
            assert "WARNING ray serve: the application is gone from the cluster; deploying it again" in events.of("dep")
        finally:
            await backend.close()


class TestConfig:
    def backend(self, **overrides: Any) -> RayServeBackend:
        return RayServeBackend(settings(**overrides), "http://127.0.0.1:9", None, Events())

    def test_one_application_per_deployment(self) -> None:
        backend = self.backend(ray_serve_url="http://127.0.0.1:8123")
        backend._plans = {"b": plan("b", "http://api/b"), "a": plan("a", "http://api/a", min_instances=0)}
        config = backend.config()
        assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
        assert [app["name"] for app in config["applications"]] == ["a", "b"]
        app = config["applications"][1]
        assert app["route_prefix"] == "/b"
        assert app["import_path"] == "yolostack.deployments.serve_app:build"
        assert app["args"]["artifact_url"] == "http://api/b"
        assert app["args"]["artifact_token"] == TOKEN
        assert app["args"]["artifact_files"] == list(ARTIFACTS)
        deployment = app["deployments"][0]
        assert deployment["name"] == DEPLOYMENT_NAME
        assert deployment["user_config"] == {"generation": 1}
        assert deployment["max_ongoing_requests"] == 8
        assert deployment["autoscaling_config"]["min_replicas"] == 1
        assert deployment["autoscaling_config"]["max_replicas"] == 2
        assert "downscale_to_zero_delay_s" not in deployment["autoscaling_config"]

    def test_min_zero_scales_to_zero_after_the_delay(self) -> None:
        backend = self.backend(scale_to_zero_delay_seconds=42)
        autoscaling = backend.application(plan("a", "http://api/a", min_instances=0))["deployments"][0][
            "autoscaling_config"
        ]
        assert autoscaling["min_replicas"] == 0
        assert autoscaling["initial_replicas"] == 1
        assert autoscaling["downscale_to_zero_delay_s"] == 42

    def test_replica_resources(self) -> None:
        options = self.backend(ray_replica_cpus=None, ray_region_resources=True).application(
            plan("a", "http://api/a", cpu=3, region="eu")
        )["deployments"][0]["ray_actor_options"]
        assert options == {"num_cpus": 3, "resources": {"region:eu": 0.001}}

    def test_a_remote_proxy_listens_on_every_interface(self) -> None:
        config = self.backend(ray_serve_url="http://ray-head:8100").config()
        assert config["http_options"] == {"host": "0.0.0.0", "port": 8100}  # noqa: S104

    def test_other_applications_are_carried_over(self) -> None:
        backend = self.backend()
        other = {"name": "theirs", "import_path": "their.app:build", "route_prefix": "/theirs"}
        ours_gone = {"name": "old", "import_path": IMPORT_PATH, "route_prefix": "/old"}
        backend._status = {
            "applications": {
                "theirs": {"deployed_app_config": other},
                "old": {"deployed_app_config": ours_gone},
            }
        }
        assert backend.config()["applications"] == [other]
