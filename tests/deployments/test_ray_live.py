"""A deployment on the Ray backend through a live ``yolostack serve``: the reconciler renders the Serve
config, the Serve replicas download the model from the server's artifact route with their token, and
predicts through ``serviceUrl`` and ``…/predict`` are relayed to Serve's proxy; then stop and delete."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.detector import TrainedDetector, upload_detector
from tests.fixtures.server import LiveServer, start_server
from tests.jobs.helpers import wait_for
from tests.worker.ray_cluster import RayCluster, ray_cluster

pytestmark = [pytest.mark.slow, pytest.mark.ray]

TIMEOUT = 180.0


def wait(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = TIMEOUT) -> Any:
    return wait_for(fetch, done, timeout, what=what)


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, RayCluster]]:
    cluster = ray_cluster()
    env = {
        "YOLOSTACK_DATA_DIR": str(tmp_path_factory.mktemp("ray-deployments") / "data"),
        "YOLOSTACK_DEPLOYMENTS__BACKEND": "ray",
        "YOLOSTACK_RAY_ADDRESS": cluster.address,
        "YOLOSTACK_DEPLOYMENTS__RAY_SERVE_URL": os.environ.get("YOLOSTACK_TEST_RAY_SERVE_URL", "http://127.0.0.1:8100"),
        # Two cores: replicas take no CPU reservation, so they fit beside anything else on the head.
        "YOLOSTACK_DEPLOYMENTS__RAY_REPLICA_CPUS": "0",
    }
    if cluster.token:
        env["YOLOSTACK_RAY_TOKEN"] = cluster.token
    live = start_server(env)
    try:
        yield live, cluster
    finally:
        live.stop()


class TestRayDeployment:
    def test_deploy_predict_stop_delete(
        self, server: tuple[LiveServer, RayCluster], trained_detector: TrainedDetector
    ) -> None:
        live, cluster = server
        key = str(live.key)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=live.base_url, headers=headers, timeout=120) as http:
            slug = upload_detector(http, trained_detector, "ray")
            body: dict[str, Any] = {"project": "ray", "model": slug, "deployment": "serve", "name": "On Ray"}
            body |= {"region": "us-central1", "minInstances": 1, "maxInstances": 2}
            created = ok(http.post("/api/deployments/admin", json=body), 201)

            def deployment() -> dict[str, Any]:
                found: dict[str, Any] = ok(http.get("/api/deployments/admin/serve"))["deployment"]
                return found

            ready = wait(deployment, lambda d: d["status"] in ("ready", "failed"), "ready on Ray")
            assert ready["status"] == "ready", ready
            assert ready["backend"] == "ray"
            assert ready["instances"] >= 1

            with cluster.http() as ray:
                apps = ray.get("/api/serve/applications/").json()["applications"]
            app = apps[created["id"]]
            options = app["deployed_app_config"]["deployments"][0]
            assert options["max_ongoing_requests"] > 0
            assert options["autoscaling_config"]["min_replicas"] == 1
            assert options["autoscaling_config"]["max_replicas"] == 2

            image = trained_detector.images[0]
            with image.open("rb") as handle:
                result = ok(
                    http.post(
                        "/api/deployments/admin/serve/predict",
                        files={"file": handle},
                        data={"imgsz": "128", "conf": "0.01"},
                    )
                )
            assert result["metadata"]["deployment"] == created["id"]
            assert result["images"][0]["results"]
            with image.open("rb") as handle:
                hub = httpx.post(
                    ready["serviceUrl"],
                    headers={"x-api-key": key},
                    files={"file": handle},
                    data={"imgsz": "128"},
                    timeout=60,
                )
            assert hub.status_code == 200, hub.text

            metrics = ok(http.get("/api/deployments/admin/serve/metrics", params={"range": "1h"}))
            assert metrics["summary"]["totalRequests"] == 2
            messages = [entry["message"] for entry in ok(http.get("/api/deployments/admin/serve/logs"))["entries"]]
            assert any("deployment ready" in message for message in messages)

            ok(http.patch("/api/deployments/admin/serve", json={"action": "stop"}))
            wait(deployment, lambda d: d["status"] == "stopped", "stopped")

            def app_names() -> set[str]:
                with cluster.http() as ray:
                    return set(ray.get("/api/serve/applications/").json()["applications"])

            wait(app_names, lambda names: created["id"] not in names, "the Serve application removed", timeout=60)
            ok(http.delete("/api/deployments/admin/serve"))
