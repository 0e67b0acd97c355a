"""Dedicated deployments on the local backend: real replica processes serving the converted detector.

Here (beside the shared predict tests) so that they use the same converted detector. Each test starts an
app of its own over the stack's database (the stack's app runs no replicas) with fast autoscaling, and
deletes its deployments at the end. The live-server and official-SDK runs are in tests/conformance.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.inference.conftest import CONF, IMGSZ, Served, image_form
from tests.models.helpers import uploaded_model, wait_for_serving
from yolostack.app import create_app
from yolostack.deployments.local import LocalBackend

pytestmark = pytest.mark.slow

FAST = {
    "interval_seconds": 0.2,
    "upscale_delay_seconds": 0.0,
    "downscale_delay_seconds": 1.0,
    "scale_to_zero_delay_seconds": 1.5,
    "target_ongoing_requests": 1.0,
    "max_ongoing_requests": 2,
}
READY_TIMEOUT = 60.0
LOAD_TIMEOUT = 60.0


def process_mechanics_only_once(served: Served) -> None:
    """Replica processes, scaling and rollouts do not touch the database beyond what the lifecycle, metrics
    and access tests run on both: run them on SQLite only (CI time)."""
    if not served.stack.database_url.startswith("sqlite"):
        pytest.skip("replica process mechanics run once, on SQLite; the routes run on PostgreSQL too")


@dataclass
class Deployed:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def backend(self) -> LocalBackend:
        backend = self.app.state.deployment_backend
        assert isinstance(backend, LocalBackend)
        return backend


@asynccontextmanager
async def deployed(
    served: Served, rate_limits: dict[str, Any] | None = None, **deployments: Any
) -> AsyncIterator[Deployed]:
    stack = served.stack
    settings = make_settings(
        stack.database_url,
        stack.data_dir,
        rate_limits=rate_limits or {"hub_per_hour": 100_000},
        deployments={**FAST, **deployments},
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as http:
            yield Deployed(application, http)


async def wait_until(
    fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value}")
        await asyncio.sleep(0.2)


async def get_deployment(http: httpx.AsyncClient, user: User, slug: str) -> dict[str, Any]:
    body = ok(await http.get(f"/api/deployments/{user.username}/{slug}", headers=user.headers))
    deployment: dict[str, Any] = body["deployment"]
    return deployment


async def wait_status(http: httpx.AsyncClient, user: User, slug: str, status: str) -> dict[str, Any]:
    result: dict[str, Any] = await wait_until(
        lambda: get_deployment(http, user, slug), lambda d: d["status"] == status, READY_TIMEOUT, f"{slug} {status}"
    )
    return result


async def create(http: httpx.AsyncClient, served: Served, slug: str, **extra: Any) -> dict[str, Any]:
    body = {
        "project": served.project,
        "model": served.model,
        "deployment": slug,
        "name": f"Deployment {slug}",
        "region": "us-central1",
        **extra,
    }
    created: dict[str, Any] = ok(
        await http.post(f"/api/deployments/{served.alice.username}", headers=served.alice.headers, json=body), 201
    )
    return created


async def predict(http: httpx.AsyncClient, served: Served, slug: str) -> httpx.Response:
    return await http.post(
        f"/api/deployments/{served.alice.username}/{slug}/predict",
        headers=served.alice.headers,
        **image_form(served.detector.images[0], imgsz=IMGSZ, conf=CONF),
    )


async def logs(http: httpx.AsyncClient, user: User, slug: str, **params: Any) -> list[dict[str, Any]]:
    body = ok(await http.get(f"/api/deployments/{user.username}/{slug}/logs", headers=user.headers, params=params))
    entries: list[dict[str, Any]] = body["entries"]
    return entries


async def log_text(http: httpx.AsyncClient, user: User, slug: str) -> str:
    return "\n".join(entry["message"] for entry in await logs(http, user, slug, limit=1000))


async def delete(http: httpx.AsyncClient, user: User, slug: str) -> None:
    ok(await http.delete(f"/api/deployments/{user.username}/{slug}", headers=user.headers))


class TestLifecycle:
    async def test_client_routes_create_predict_stop_start_delete(self, served: Served) -> None:
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "life", cpu=1, memoryGi=2)
            assert created["status"] == "creating"
            assert created["deployment"] == "life"
            assert created["id"].startswith("deployment_")
            ready = await wait_status(http, alice, "life", "ready")
            assert ready["resources"] == {"cpu": 1, "memoryGi": 2, "minInstances": 1, "maxInstances": 1}
            assert ready["instances"] == 1
            assert ready["serviceUrl"].endswith(f"/d/{created['id']}")

            response = await predict(http, served, "life")
            body = ok(response)
            assert body["metadata"]["task"] == "detect"
            assert body["metadata"]["deployment"] == created["id"]
            assert len(body["images"]) == 1
            assert body["images"][0]["results"], "the detector finds shapes in its own sample"
            assert response.headers["x-yolostack-replica"].startswith("r")

            health = ok(await http.get(f"/api/deployments/{alice.username}/life/health", headers=alice.headers))
            assert health["healthy"] is True
            assert health["status"] == "ready"

            stopped = ok(
                await http.patch(
                    f"/api/deployments/{alice.username}/life", headers=alice.headers, json={"action": "stop"}
                )
            )
            assert stopped["status"] in ("stopping", "stopped")
            await wait_status(http, alice, "life", "stopped")
            assert stack.backend.replica_pids(created["id"]) == {}
            assert_error(await predict(http, served, "life"), 409, "CONFLICT")
            unhealthy = ok(await http.get(f"/api/deployments/{alice.username}/life/health", headers=alice.headers))
            assert unhealthy["healthy"] is False

            ok(
                await http.patch(
                    f"/api/deployments/{alice.username}/life", headers=alice.headers, json={"action": "start"}
                )
            )
            await wait_status(http, alice, "life", "ready")
            ok(await predict(http, served, "life"))

            text = await log_text(http, alice, "life")
            for event in ("starting generation 1", "deployment ready", "deployment stopped", "ready in"):
                assert event in text

            await delete(http, alice, "life")
            missing = await http.get(f"/api/deployments/{alice.username}/life", headers=alice.headers)
            assert_error(missing, 404, "NOT_FOUND")
            await wait_until(
                lambda: asyncio.sleep(0, stack.backend.deployments()),
                lambda ids: created["id"] not in ids,
                20,
                "removal",
            )

    async def test_seed_routes(self, served: Served) -> None:
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            body = {"modelId": served.model_id, "region": "europe-west4", "minInstances": 0, "maxInstances": 2}
            created = ok(await http.post("/api/deployments", headers=alice.headers, json=body), 201)
            data = created["data"]
            assert data["modelId"] == served.model_id
            assert (data["minInstances"], data["maxInstances"], data["region"]) == (0, 2, "europe-west4")
            deployment_id = data["id"]

            async def seed_get() -> dict[str, Any]:
                got: dict[str, Any] = ok(await http.get(f"/api/deployments/{deployment_id}", headers=alice.headers))[
                    "data"
                ]
                return got

            await wait_until(seed_get, lambda d: d["status"] == "ready", READY_TIMEOUT, "seed deployment ready")
            listed = ok(await http.get("/api/deployments", headers=alice.headers, params={"modelId": served.model_id}))
            assert deployment_id in [item["id"] for item in listed["data"]]

            service_url = data["serviceUrl"].removeprefix("http://127.0.0.1:8000")
            hub = await http.post(
                service_url,
                headers={"x-api-key": alice.key},
                **image_form(
                    served.detector.images[0],
                    model=f"https://hub.ultralytics.com/models/{served.model_id}",
                    imgsz=IMGSZ,
                    conf=CONF,
                ),
            )
            assert ok(hub)["images"][0]["results"]

            ok(await http.post(f"/api/deployments/{deployment_id}/stop", headers=alice.headers))
            await wait_until(seed_get, lambda d: d["status"] == "stopped", READY_TIMEOUT, "seed deployment stopped")
            ok(await http.post(f"/api/deployments/{deployment_id}/start", headers=alice.headers))
            await wait_until(seed_get, lambda d: d["status"] == "ready", READY_TIMEOUT, "seed deployment ready again")

            metrics = ok(await http.get(f"/api/deployments/{deployment_id}/metrics", headers=alice.headers))
            assert metrics["data"]["summary"]["totalRequests"] == 1
            seed_logs = ok(
                await http.get(
                    f"/api/deployments/{deployment_id}/logs",
                    headers=alice.headers,
                    params={"severity": "INFO", "limit": 5},
                )
            )
            assert 1 <= len(seed_logs["data"]) <= 5
            assert {entry["severity"] for entry in seed_logs["data"]} == {"INFO"}

            ok(await http.delete(f"/api/deployments/{deployment_id}", headers=alice.headers))
            assert_error(await http.get(f"/api/deployments/{deployment_id}", headers=alice.headers), 404, "NOT_FOUND")


class TestScaling:
    async def test_scales_up_under_load_down_to_zero_and_cold_starts(self, served: Served) -> None:
        process_mechanics_only_once(served)
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "elastic", minInstances=0, maxInstances=2)
            await wait_status(http, alice, "elastic", "ready")

            seen: set[int] = set()
            replicas: set[str] = set()

            # Load until the second replica has answered too (it needs a moment to start on a busy machine).
            deadline = time.monotonic() + LOAD_TIMEOUT

            async def worker() -> list[int]:
                codes: list[int] = []
                while len(codes) < 8 or (len(replicas) < 2 and time.monotonic() < deadline):
                    response = await predict(http, served, "elastic")
                    codes.append(response.status_code)
                    replicas.add(response.headers.get("x-yolostack-replica", ""))
                    seen.add(len(stack.backend.replica_pids(created["id"])))
                return codes

            codes = [code for batch in await asyncio.gather(*(worker() for _ in range(6))) for code in batch]
            assert codes == [200] * len(codes)
            assert max(seen) == 2, f"replica counts seen under load: {sorted(seen)}"
            assert len(replicas) >= 2, f"answered by {sorted(replicas)}"

            idle = await wait_until(
                lambda: get_deployment(http, alice, "elastic"), lambda d: d["instances"] == 0, 30, "scale to zero"
            )
            assert idle["status"] == "ready"

            started = time.perf_counter()
            cold = await predict(http, served, "elastic")
            cold_seconds = time.perf_counter() - started
            assert cold.status_code == 200, cold.text
            text = await log_text(http, alice, "elastic")
            assert "scaling up 1 → 2" in text or "scaling up 0 → 2" in text
            assert "scaling to zero" in text
            assert "cold start" in text
            print(f"cold start answered in {cold_seconds:.2f} s")  # noqa: T201  (shown with -s; measured in bench/)

            # health pings a replica: on a deployment at zero it is a cold start too (it warms it)
            await wait_until(
                lambda: get_deployment(http, alice, "elastic"), lambda d: d["instances"] == 0, 30, "zero again"
            )
            health = ok(await http.get(f"/api/deployments/{alice.username}/elastic/health", headers=alice.headers))
            assert health["healthy"] is True, health
            assert len(stack.backend.replica_pids(created["id"])) == 1
            await delete(http, alice, "elastic")

    async def test_killed_replica_is_replaced(self, served: Served) -> None:
        process_mechanics_only_once(served)
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "phoenix")
            await wait_status(http, alice, "phoenix", "ready")
            ((replica, pid),) = stack.backend.replica_pids(created["id"]).items()
            os.kill(pid, signal.SIGKILL)
            replaced = await wait_until(
                lambda: asyncio.sleep(0, stack.backend.replica_pids(created["id"])),
                lambda pids: bool(pids) and replica not in pids,
                30,
                "a replacement replica",
            )
            assert pid not in replaced.values()
            ok(await predict(http, served, "phoenix"))
            text = await log_text(http, alice, "phoenix")
            assert f"replica {replica} exited unexpectedly (signal 9); replacing it" in text
            errors = await logs(http, alice, "phoenix", severity="ERROR")
            assert any("exited unexpectedly" in entry["message"] for entry in errors)
            await delete(http, alice, "phoenix")

    async def test_replace_under_load_fails_no_request(self, served: Served, tmp_path: Path) -> None:
        process_mechanics_only_once(served)
        alice = served.alice
        stack_client = served.client
        project_id = ok(
            await stack_client.get(f"/api/projects/{alice.username}/{served.project}", headers=alice.headers)
        )
        project_id = project_id.get("project", {}).get("id") or project_id["data"]["id"]
        second = await uploaded_model(
            stack_client,
            alice,
            project_id,
            data=served.detector.weights.read_bytes(),
            filename="second.pt",
            name="detector-second",
        )
        converted = await wait_for_serving(stack_client, alice, second["id"], timeout=600)
        assert converted["serving"]["status"] == "ready"
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "swap", minInstances=1, maxInstances=1)
            await wait_status(http, alice, "swap", "ready")
            stop = asyncio.Event()
            models: list[str] = []
            codes: list[int] = []

            async def load() -> None:
                while not stop.is_set():
                    response = await predict(http, served, "swap")
                    codes.append(response.status_code)
                    if response.status_code == 200:
                        models.append(response.json()["metadata"]["model"])

            workers = [asyncio.create_task(load()) for _ in range(3)]
            await wait_until(lambda: asyncio.sleep(0, len(codes)), lambda n: n >= 3, 30, "load")
            replaced = ok(
                await http.patch(
                    f"/api/deployments/{alice.username}/swap",
                    headers=alice.headers,
                    json={"action": "replace", "project": served.project, "model": second["slug"]},
                )
            )
            assert replaced["status"] == "deploying"
            await wait_until(
                lambda: asyncio.sleep(0, list(models)), lambda seen: seen[-3:] == [second["id"]] * 3, 60, "new model"
            )
            await wait_status(http, alice, "swap", "ready")
            stop.set()
            await asyncio.gather(*workers)
            assert set(codes) == {200}, f"failed requests during replace: {[c for c in codes if c != 200]}"
            assert models[0] == served.model_id
            assert models[-1] == second["id"]
            after = await get_deployment(http, alice, "swap")
            assert after["modelId"] == second["id"]
            assert after["generation"] == 2
            assert created["id"] == after["id"]
            assert "generation 2 serves; generation 1 drains" in await log_text(http, alice, "swap")
            await delete(http, alice, "swap")


class TestRollback:
    async def test_a_generation_that_cannot_load_leaves_the_previous_one_serving(
        self, served: Served, tmp_path: Path
    ) -> None:
        process_mechanics_only_once(served)
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "sturdy")
            await wait_status(http, alice, "sturdy", "ready")
            plan = stack.backend.plan(created["id"])
            assert plan is not None
            assert plan.model_dir is not None
            broken = tmp_path / "broken"
            broken.mkdir()
            shutil.copy(plan.model_dir / "meta.json", broken / "meta.json")
            (broken / "model.onnx").write_bytes(b"this is not an ONNX model")
            await stack.backend.apply(replace(plan, generation=plan.generation + 1, model_dir=broken, version="bad"))
            after = await wait_until(
                lambda: get_deployment(http, alice, "sturdy"),
                lambda d: "rollout of generation 2 failed" in (d["statusMessage"] or ""),
                60,
                "the failed rollout reported",
            )
            assert after["status"] == "ready"
            response = await predict(http, served, "sturdy")
            assert ok(response)["metadata"]["version"]["weights"] == plan.version
            rolled_back = stack.backend.plan(created["id"])
            assert rolled_back is not None
            assert rolled_back.generation == plan.generation
            errors = [entry["message"] for entry in await logs(http, alice, "sturdy", severity="ERROR")]
            assert any("failed to start" in message for message in errors)
            await delete(http, alice, "sturdy")


class TestMetricsAndLogs:
    async def test_reflect_the_requests_made(self, served: Served) -> None:
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            await create(http, served, "counted")
            await wait_status(http, alice, "counted", "ready")
            for _ in range(5):
                ok(await predict(http, served, "counted"))
            bad = await http.post(
                f"/api/deployments/{alice.username}/counted/predict", headers=alice.headers, data={"imgsz": "64"}
            )
            assert_error(bad, 422, "VALIDATION_ERROR")

            base = f"/api/deployments/{alice.username}/counted/metrics"
            full = ok(await http.get(base, headers=alice.headers, params={"range": "1h"}))
            summary = full["summary"]
            assert summary["totalRequests"] == 6
            assert summary["errorCount"] == 0  # a 422 is the caller's error, not the deployment's
            assert 0 < summary["p50LatencyMs"] <= summary["p95LatencyMs"] <= summary["p99LatencyMs"]
            assert sum(point["value"] for point in full["timeSeries"]["requests"]) == 6
            assert max(point["value"] for point in full["timeSeries"]["instanceCount"]) == 1
            assert set(full["timeSeries"]) >= {
                "requests",
                "errors",
                "latencyP50",
                "latencyP95",
                "cpuUtilization",
                "memoryUtilization",
                "instanceCount",
            }
            spark = ok(await http.get(base, headers=alice.headers, params={"sparkline": "true"}))
            assert len(spark["requests24h"]) == 24
            assert spark["totalRequests"] == 6
            overview = ok(await http.get(base, headers=alice.headers, params={"view": "overview"}))
            assert set(overview["timeSeries"]) == {"requests", "errors", "latencyP95"}
            assert_error(await http.get(base, headers=alice.headers, params={"range": "2y"}), 422, "VALIDATION_ERROR")

            requests = [entry for entry in await logs(http, alice, "counted", limit=1000) if "httpRequest" in entry]
            assert len(requests) == 6
            assert {entry["httpRequest"]["status"] for entry in requests} == {200, 422}
            warnings = await logs(http, alice, "counted", severity="WARNING")
            assert len(warnings) == 1

            pages, token = [], None
            while True:
                params: dict[str, Any] = {"limit": 2}
                if token:
                    params["pageToken"] = token
                body = ok(
                    await http.get(
                        f"/api/deployments/{alice.username}/counted/logs", headers=alice.headers, params=params
                    )
                )
                pages.append(body["entries"])
                token = body.get("nextPageToken")
                if not token:
                    break
            flat = [entry["message"] for page in pages for entry in page]
            everything = [entry["message"] for entry in await logs(http, alice, "counted", limit=1000)]
            assert flat == everything
            assert all(len(page) <= 2 for page in pages)
            await delete(http, alice, "counted")


class TestAccess:
    async def test_another_accounts_deployment_is_not_found(self, served: Served) -> None:
        alice, bob = served.alice, served.bob
        async with deployed(served) as stack:
            http = stack.http
            created = await create(http, served, "private")
            base = f"/api/deployments/{alice.username}/private"
            for response in (
                await http.get(base, headers=bob.headers),
                await http.patch(base, headers=bob.headers, json={"action": "stop"}),
                await http.delete(base, headers=bob.headers),
                await http.get(f"{base}/logs", headers=bob.headers),
                await http.get(f"{base}/metrics", headers=bob.headers),
                await http.get(f"/api/deployments/{created['id']}", headers=bob.headers),
                await http.post(f"/api/deployments/{created['id']}/stop", headers=bob.headers),
                await http.post(
                    f"/d/{created['id']}", headers={"x-api-key": bob.key}, **image_form(served.detector.images[0])
                ),
            ):
                assert_error(response, 404, "NOT_FOUND")
            listed = ok(await http.get(f"/api/deployments/{alice.username}", headers=bob.headers))
            assert listed["deployments"] == []
            assert_error(
                await http.post(f"/d/{created['id']}", **image_form(served.detector.images[0])), 401, "UNAUTHORIZED"
            )
            await delete(http, alice, "private")

    async def test_service_url_is_not_rate_limited(self, served: Served) -> None:
        """The shared HUB API allows 1 call an hour and the plan 4 calls a minute here; the deployment's own
        URL answers every call."""
        process_mechanics_only_once(served)
        alice = served.alice
        limits = {"hub_per_hour": 1, "enterprise": {"per_minute": 4, "per_day": 1000}}
        async with deployed(served, rate_limits=limits) as stack:
            http = stack.http
            created = await create(http, served, "unmetered")
            await wait_until(
                lambda: stack.backend.state(created["id"]), lambda state: state.phase == "ready", READY_TIMEOUT, "ready"
            )
            form = image_form(served.detector.images[0], imgsz=IMGSZ)
            codes = [(await http.post(f"/d/{created['id']}", headers={"x-api-key": alice.key}, **form)).status_code]
            codes += [(await http.post(f"/d/{created['id']}/predict", headers=alice.headers, **form)).status_code]
            for _ in range(6):
                response = await http.post(f"/d/{created['id']}", headers={"x-api-key": alice.key}, **form)
                codes.append(response.status_code)
                assert "x-ratelimit-limit" not in response.headers
            assert codes == [200] * 8
            hub = [
                (await http.post("/", headers={"x-api-key": alice.key}, data={"model": served.model_id}))
                for _ in range(2)
            ]
            assert hub[-1].status_code == 429
            api = [(await http.get(f"/api/deployments/{alice.username}", headers=alice.headers)) for _ in range(5)]
            assert_error(api[-1], 429, "RATE_LIMITED")
        async with deployed(served) as cleanup:
            await delete(cleanup.http, alice, "unmetered")

    async def test_invalid_requests(self, served: Served) -> None:
        alice = served.alice
        async with deployed(served) as stack:
            http = stack.http
            owner = f"/api/deployments/{alice.username}"
            base = {"project": served.project, "model": served.model, "name": "x", "region": "us-central1"}
            for extra, field in (
                ({"deployment": "cpu", "cpu": 3}, "cpu"),
                ({"deployment": "mem", "memoryGi": 5}, "memoryGi"),
                ({"deployment": "range", "minInstances": 3, "maxInstances": 2}, "maxInstances"),
                ({"deployment": "Not A Slug"}, "deployment"),
                ({"deployment": "region", "region": "Mars Base"}, "region"),
            ):
                response = await http.post(owner, headers=alice.headers, json={**base, **extra})
                error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
                assert error["details"][0]["field"] == field
            empty = await http.post(
                owner, headers=alice.headers, json={**base, "deployment": "empty", "project": "cars", "model": "empty"}
            )
            assert_error(empty, 409, "CONFLICT")
            await create(http, served, "twice")
            storage = ok(await http.get("/api/storage", headers=alice.headers))
            assert storage["usage"]["deployments"]["current"] >= 1
            assert_error(
                await http.post(owner, headers=alice.headers, json={**base, "deployment": "twice"}), 409, "CONFLICT"
            )
            for body in ({"action": "teleport"}, {"action": "camera", "url": "rtsp://x"}, {}):
                assert_error(
                    await http.patch(f"{owner}/twice", headers=alice.headers, json=body), 422, "VALIDATION_ERROR"
                )
            renamed = ok(await http.patch(f"{owner}/twice", headers=alice.headers, json={"name": "Twice Renamed"}))
            assert renamed["deployment"]["deployment"] == "twice-renamed"
            tagged = ok(
                await http.patch(f"{owner}/twice-renamed", headers=alice.headers, json={"metadata": {"team": "qa"}})
            )
            assert tagged["deployment"]["metadata"] == {"team": "qa"}
            await delete(http, alice, "twice-renamed")
