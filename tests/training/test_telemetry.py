"""Inbound training telemetry, event by event, as the ``ultralytics`` trainer sends it (clients.md §2.6)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.activity_log import activity_events
from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.training.helpers import METRICS, TRAIN_ARGS, UPLOAD, end_epoch, send, start_run, training
from yolostack.config import Settings

CHECKPOINT = b"not a real checkpoint, just bytes to store " * 100


class TestTrainingStarted:
    async def test_creates_project_and_model_and_answers_ids(self, client: httpx.AsyncClient, alice: User) -> None:
        reply = await start_run(client, alice)
        assert reply["received"] is True
        assert reply["modelId"].startswith("model_")
        assert isinstance(reply["runId"], int)
        assert reply["modelSlug"] == "exp"
        assert reply["modelUrl"].endswith("/alice/shapes-lab/exp")  # the model page, not the API
        assert "/api/" not in reply["modelUrl"]
        assert reply["cancelled"] is False
        project = ok(await client.get("/api/projects/alice/shapes-lab", headers=alice.headers))["project"]
        assert project["visibility"] == "private"
        job = await training(client, alice, "alice", "shapes-lab", "exp")
        assert job["status"] == "running"
        assert job["progress"]["totalEpochs"] == 3
        assert job["progress"]["currentEpoch"] == 0
        assert await activity_events(client, alice, "training.started")

    async def test_a_retried_start_is_the_same_run(self, client: httpx.AsyncClient, alice: User) -> None:
        first = await start_run(client, alice)
        again = await start_run(client, alice)
        assert (again["modelId"], again["runId"]) == (first["modelId"], first["runId"])

    async def test_a_new_run_under_a_taken_name_gets_the_next_slug(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        first = await start_run(client, alice)
        await end_epoch(client, alice, first["modelId"], 0)
        second = await start_run(client, alice)
        assert second["modelId"] != first["modelId"]
        assert second["modelSlug"] == "exp-2"

    async def test_a_path_that_is_not_the_callers_workspace_is_a_project_of_the_caller(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        reply = await start_run(client, alice, project="bob/secret")
        assert reply["modelUrl"].endswith("/alice/bob-secret/exp")
        assert_error(await client.get("/api/projects/bob/secret", headers=bob.headers), 404, "NOT_FOUND")

    async def test_resume_with_model_id_starts_a_new_run_of_that_model(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        first = await start_run(client, alice)
        ok(await send(client, alice, "training_failed", {"error": "boom"}, modelId=first["modelId"]))
        resumed = ok(
            await send(
                client, alice, "training_started", {"trainArgs": TRAIN_ARGS, "epochs": 3}, modelId=first["modelId"]
            )
        )
        assert resumed["modelId"] == first["modelId"]
        assert resumed["runId"] == first["runId"] + 1

    async def test_resume_of_another_accounts_model_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        reply = await start_run(client, alice)
        response = await send(client, bob, "training_started", {"epochs": 1}, modelId=reply["modelId"])
        assert_error(response, 404, "NOT_FOUND")


class TestRunEvents:
    async def test_epochs_console_checkpoint_and_completion(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        model_id = run["modelId"]
        console = {"chunkId": 1, "content": "[2026-12-03 10:00:00] Epoch 1/3\n", "lineCount": 1, "progress": {}}
        ok(await send(client, alice, "console_output", console, modelId=model_id))
        for epoch in range(3):
            reply = await end_epoch(client, alice, model_id, epoch)
            assert reply["cancelled"] is False
        job = await training(client, alice, "alice", "shapes-lab", "exp")
        assert job["progress"]["currentEpoch"] == 3
        assert job["progress"]["percentage"] == 100
        assert job["epochMetrics"]["metrics/mAP50-95(B)"] == pytest.approx(0.04)

        staged = ok(
            await client.post(
                UPLOAD, json={"filename": "best.pt", "modelId": model_id, "runId": run["runId"]}, headers=alice.headers
            )
        )
        assert staged["gcsPath"]
        put = await client.put(
            urlsplit(staged["uploadUrl"]).path, content=CHECKPOINT, headers={"Content-Type": "application/octet-stream"}
        )
        assert put.status_code == 200, put.text
        saved = ok(
            await send(
                client,
                alice,
                "checkpoint_saved",
                {"modelPath": staged["gcsPath"], "runId": run["runId"], "uploadPath": staged["uploadPath"]},
                modelId=model_id,
            )
        )
        assert saved["weightsAttached"] is True  # a non-empty reply: the trainer treats {} as a failure

        results = {"metrics": {"metrics/mAP50-95(B)": 0.05, "fitness": 0.06}, "bestEpoch": 2, "bestFitness": 0.06}
        done = {"results": results, "classNames": ["square", "circle"], "plots": [], "runId": run["runId"]}
        ok(await send(client, alice, "training_complete", done, modelId=model_id))
        late = await end_epoch(client, alice, model_id, 3)  # the final validation's extra epoch_end
        assert late["received"] is True

        job = await training(client, alice, "alice", "shapes-lab", "exp")
        assert job["status"] == "completed"
        assert job["progress"]["currentEpoch"] == 3
        model = ok(await client.get("/api/models/alice/shapes-lab/exp", headers=alice.headers))["model"]
        assert model["status"] == "completed"
        assert model["hasWeights"] is True
        assert [row["epoch"] for row in model["trainResults"]] == [0, 1, 2]
        assert model["bestEpoch"] == 2
        files = ok(await client.get("/api/models/alice/shapes-lab/exp/files", headers=alice.headers))["files"]
        assert files[0]["name"] == "best.pt"
        assert files[0]["size"] == len(CHECKPOINT)
        logs = ok(await client.get(f"/api/jobs/{job['id']}/logs", headers=alice.headers))["entries"]
        assert "Epoch 1/3" in logs[0]["content"]
        assert await activity_events(client, alice, "training.completed")

    async def test_cancel_is_answered_in_the_next_epoch_reply(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        await end_epoch(client, alice, run["modelId"], 0)
        cancelled = ok(await client.delete("/api/models/alice/shapes-lab/exp/training", headers=alice.headers))
        assert cancelled["status"] == "cancelled"
        reply = await end_epoch(client, alice, run["modelId"], 1)
        assert reply["cancelled"] is True
        job = await training(client, alice, "alice", "shapes-lab", "exp")
        assert job["status"] == "cancelled"
        assert job["progress"]["currentEpoch"] == 2

    async def test_a_stale_run_id_is_ignored(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        reply = ok(
            await send(
                client, alice, "training_complete", {"results": {}, "runId": run["runId"] + 7}, modelId=run["modelId"]
            )
        )
        assert reply["ignored"] == "stale_instance"
        assert (await training(client, alice, "alice", "shapes-lab", "exp"))["status"] == "running"

    async def test_training_failed_records_the_error(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        ok(
            await send(
                client, alice, "training_failed", {"error": "CUDA out of memory", "code": "OOM"}, modelId=run["modelId"]
            )
        )
        job = await training(client, alice, "alice", "shapes-lab", "exp")
        assert job["status"] == "failed"
        assert job["error"]["message"] == "CUDA out of memory"
        assert job["error"]["code"] == "OOM"

    async def test_another_accounts_model_is_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        run = await start_run(client, alice)
        assert_error(await send(client, bob, "epoch_end", {"epoch": 0}, modelId=run["modelId"]), 404, "NOT_FOUND")
        staged = await client.post(UPLOAD, json={"filename": "best.pt", "modelId": run["modelId"]}, headers=bob.headers)
        assert_error(staged, 404, "NOT_FOUND")

    async def test_unknown_event_and_missing_model_id(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await send(client, alice, "exploded", {}), 422, "VALIDATION_ERROR")
        assert_error(await send(client, alice, "epoch_end", {"epoch": 0}), 422, "VALIDATION_ERROR")

    async def test_needs_a_key(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.post(METRICS, json={"event": "epoch_end", "data": {}}), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            (METRICS, {"data": {}}, "event"),
            (METRICS, {"event": 3}, "event"),
            (METRICS, {"event": "epoch_end", "data": {}, "modelId": 5}, "modelId"),
            (METRICS, {"event": "console_output", "data": "a line"}, "data"),
            (METRICS, {"event": "training_started", "data": {}, "project": {"owner": "alice"}}, "project"),
            (UPLOAD, {"filename": 5}, "filename"),
            (UPLOAD, {"filename": "best.pt", "runId": "one"}, "runId"),
            (UPLOAD, {"filename": "best.pt", "size": -1}, "size"),
            # Found by the fuzzer: a control character in the stored name was a 500.
            (UPLOAD, {"filename": "runs/w/be\x05st.pt", "modelId": "model_x"}, "filename"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self, client: httpx.AsyncClient, alice: User, path: str, body: dict[str, object], field: str
    ) -> None:
        error = assert_error(await client.post(path, json=body, headers=alice.headers), 422, "VALIDATION_ERROR")
        assert error["error"]["details"][0]["field"] == field


class TestNotRateLimited:
    @pytest.fixture
    def settings(self, database_url: str, tmp_path: object) -> Settings:
        from pathlib import Path

        assert isinstance(tmp_path, Path)
        return make_settings(database_url, tmp_path / "data", rate_limits={"free": {"per_minute": 5}})

    async def test_a_fast_run_is_never_throttled(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        for epoch in range(12):
            await end_epoch(client, alice, run["modelId"], epoch % 3)
        throttled = [(await client.get("/api/projects", headers=alice.headers)).status_code for _ in range(8)]
        assert 429 in throttled


class TestSilentRun:
    @pytest.fixture
    def settings(self, database_url: str, tmp_path: object) -> Settings:
        from pathlib import Path

        assert isinstance(tmp_path, Path)
        jobs = {"telemetry_timeout_seconds": 1, "dispatch_interval_seconds": 0.2}
        return make_settings(database_url, tmp_path / "data", jobs=jobs)

    async def test_is_failed_after_the_telemetry_timeout(self, client: httpx.AsyncClient, alice: User) -> None:
        await start_run(client, alice)
        for _ in range(50):
            job = await training(client, alice, "alice", "shapes-lab", "exp")
            if job["status"] != "running":
                break
            await asyncio.sleep(0.2)
        assert job["status"] == "failed"
        assert job["error"]["code"] == "TELEMETRY_TIMEOUT"
        model = ok(await client.get("/api/models/alice/shapes-lab/exp", headers=alice.headers))["model"]
        assert model["status"] == "failed"


class TestDeletedModel:
    async def test_deleting_a_model_cancels_its_run(self, client: httpx.AsyncClient, alice: User) -> None:
        run = await start_run(client, alice)
        job = await training(client, alice, "alice", "shapes-lab", "exp")
        ok(await client.delete("/api/models/alice/shapes-lab/exp", headers=alice.headers))
        seen = ok(await client.get(f"/api/jobs/{job['id']}", headers=alice.headers))["job"]
        assert seen["status"] == "cancelled"
        assert seen["error"]["message"] == "the model was deleted"
        assert_error(await end_epoch_raw(client, alice, run["modelId"]), 404, "NOT_FOUND")


async def end_epoch_raw(client: httpx.AsyncClient, user: User, model_id: str) -> httpx.Response:
    return await send(client, user, "epoch_end", {"epoch": 0}, modelId=model_id)
