"""The runner's final checkpoint upload outlasts a server restart (``worker.runner.patient_final_upload``): the
upload is ultralytics' own, called again with backoff while it fails; a periodic one is not retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ultralytics.utils.callbacks import platform

from yolostack.worker.runner import patient_final_upload

LANDED = {"modelPath": "upload_1", "modelSize": 10}


class FlakyServer:
    """ultralytics' ``_upload_model`` against a server that is down for the first ``down`` calls."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        self.calls.append(kwargs)
        return None if len(self.calls) <= self.down else LANDED


def final_upload() -> Callable[..., Any]:
    """The module's ``_upload_model`` as ``on_train_end`` looks it up when it calls it."""
    upload: Callable[..., Any] = platform._upload_model
    return upload


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FlakyServer:
    flaky = FlakyServer(down=3)
    monkeypatch.setattr(platform, "_upload_model", flaky)
    return flaky


class TestFinalUpload:
    def test_retried_with_backoff_until_it_lands(self, server: FlakyServer) -> None:
        waits: list[float] = []
        patient_final_upload(sleep=waits.append)
        result = final_upload()("best.pt", "admin/demo", "m", progress=True, retry=3, model_id="model_1")
        assert result == LANDED
        assert len(server.calls) == 4
        assert all(call["model_id"] == "model_1" for call in server.calls)
        assert waits == [2.0, 4.0, 8.0]

    def test_gives_up_when_patience_runs_out(self, server: FlakyServer) -> None:
        server.down = 10**6
        patient_final_upload(patience=0.0, sleep=lambda _: None)
        assert final_upload()("best.pt", "admin/demo", "m", progress=True) is None
        assert len(server.calls) == 1

    def test_a_periodic_upload_is_tried_once(self, server: FlakyServer) -> None:
        patient_final_upload(sleep=lambda _: pytest.fail("a periodic upload must not wait"))
        assert final_upload()("best.pt", "admin/demo", "m", progress=False) is None
        assert len(server.calls) == 1
