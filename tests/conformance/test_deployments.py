"""Dedicated deployments through the real ``ultralytics-platform`` SDK against a live ``yolostack serve``:
``deployments.create / list / retrieve / update(action=…) / health / predict / logs / metrics / delete``,
and the deployment's own ``serviceUrl`` called the way seed 000's requests snippet does.

One live run (SQLite): the routes themselves run on SQLite and PostgreSQL in tests/inference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ultralytics_platform import Platform
from ultralytics_platform._exceptions import APIError

from tests.fixtures.detector import TrainedDetector, upload_detector
from tests.fixtures.server import LiveServer
from tests.jobs.helpers import wait_for

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

TIMEOUT = 180.0


def wait(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    return wait_for(fetch, done, TIMEOUT, what=what)


# One live run is enough: the deployment routes run on SQLite and PostgreSQL in tests/inference.
@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
class TestSdkDeployments:
    def test_lifecycle_predict_logs_metrics(
        self, live_server: LiveServer, trained_detector: TrainedDetector, tmp_path: Path
    ) -> None:
        server = live_server
        key = str(server.key)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            slug = upload_detector(http, trained_detector, "fleet")
        platform = Platform(base_url=server.base_url, api_key=key, max_retries=0)
        image = trained_detector.images[0]

        created = platform.deployments.create(
            "admin",
            project="fleet",
            model=slug,
            deployment="edge",
            name="Edge",
            region="us-central1",
            cpu=1,
            memory_gi=2,
        )
        assert created["status"] == "creating"
        assert created["deployment"] == "edge"
        assert created["region"] == "us-central1"

        def status() -> str:
            return str(platform.deployments.retrieve("admin", "edge")["deployment"]["status"])

        wait(status, lambda value: value == "ready", "ready")
        # The SDK's TypedDicts name only some fields; read the answers as plain JSON.
        deployment: dict[str, Any] = dict(platform.deployments.retrieve("admin", "edge")["deployment"])
        assert deployment["id"] == created["id"]
        assert deployment["resources"]["cpu"] == 1
        assert deployment["model"] == slug
        listed = platform.deployments.list("admin", status="ready")
        assert [item["deployment"] for item in listed["deployments"]] == ["edge"]

        health = platform.deployments.health("admin", "edge")
        assert health["healthy"] is True
        assert health["latencyMs"] >= 0

        with image.open("rb") as handle:
            result = platform.deployments.predict("admin", "edge", body={"file": handle, "imgsz": 128, "conf": 0.01})
        assert result["metadata"]["task"] == "detect"
        assert result["images"][0]["results"], "the detector finds its shapes"
        assert list(result["images"][0]["results"][0]["box"]) == ["x1", "y1", "x2", "y2"]

        # serviceUrl, as seed 000's requests snippet calls it: x-api-key, multipart file, model optional.
        with image.open("rb") as handle:
            hub = httpx.post(
                deployment["serviceUrl"],
                headers={"x-api-key": key},
                files={"file": handle},
                data={"model": f"{server.base_url}/models/{deployment['modelId']}", "imgsz": "128", "conf": "0.25"},
                timeout=60,
            )
        assert hub.status_code == 200, hub.text
        assert hub.json()["images"][0]["shape"] == result["images"][0]["shape"]

        stopped = platform.deployments.update("admin", "edge", body={"action": "stop"})
        assert stopped["success"] is True
        wait(status, lambda value: value == "stopped", "stopped")
        with pytest.raises(APIError) as refused, image.open("rb") as handle:
            platform.deployments.predict("admin", "edge", body={"file": handle})
        assert refused.value.status_code == 409
        platform.deployments.update("admin", "edge", body={"action": "start"})
        wait(status, lambda value: value == "ready", "ready again")
        resized = platform.deployments.update("admin", "edge", body={"action": "resize", "cpu": 2, "memoryGi": 4})
        assert resized["status"] == "deploying"
        wait(status, lambda value: value == "ready", "resized")
        assert platform.deployments.retrieve("admin", "edge")["deployment"]["resources"]["cpu"] == 2

        logs = platform.deployments.logs("admin", "edge", severity="INFO,WARNING", limit=50)
        messages = [entry["message"] for entry in logs["entries"]]
        assert any("deployment ready" in message for message in messages)
        assert sum("httpRequest" in entry for entry in logs["entries"]) == 2
        metrics: dict[str, Any] = dict(platform.deployments.metrics("admin", "edge", range="1h"))
        assert metrics["summary"]["totalRequests"] == 2
        assert metrics["deploymentId"] == created["id"]
        spark: dict[str, Any] = dict(platform.deployments.metrics("admin", "edge", sparkline="true"))
        assert spark["totalRequests"] == 2

        assert platform.deployments.delete("admin", "edge")["success"] is True
        with pytest.raises(APIError) as missing:
            platform.deployments.retrieve("admin", "edge")
        assert missing.value.status_code == 404
