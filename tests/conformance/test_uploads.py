"""The upload routes through the real ``ultralytics-platform`` SDK (``platform.upload``) against a live server."""

from __future__ import annotations

import pytest
from ultralytics_platform import Platform
from ultralytics_platform._exceptions import APIError

from tests.fixtures.server import LiveServer

pytestmark = pytest.mark.conformance


@pytest.fixture
def platform(live_server: LiveServer, admin_key: str) -> Platform:
    return Platform(base_url=live_server.base_url, api_key=admin_key, max_retries=0)


def signed_url_body(asset_id: str) -> dict[str, object]:
    """The body ``ul`` sends before uploading model weights (clients.md §1.5)."""
    return {
        "assetType": "models",
        "assetId": asset_id,
        "filename": "best.pt",
        "contentType": "application/octet-stream",
        "totalBytes": 1024,
    }


class TestSignedUrl:
    def test_unknown_model_is_404(self, platform: Platform) -> None:
        with pytest.raises(APIError) as raised:
            platform.upload.signed_url(body=signed_url_body("model_doesnotexist"))
        assert raised.value.status_code == 404
        assert raised.value.json["error"]["code"] == "NOT_FOUND"

    def test_project_id_is_not_a_model(self, platform: Platform) -> None:
        project = platform.projects.create(project="sdk-uploads", name="SDK Uploads")
        with pytest.raises(APIError) as raised:
            platform.upload.signed_url(body=signed_url_body(project["id"]))
        assert raised.value.status_code == 404


class TestComplete:
    def test_unknown_session_is_404(self, platform: Platform) -> None:
        with pytest.raises(APIError) as raised:
            platform.upload.complete(session_id="upload_doesnotexist", checksum="0" * 64)
        assert raised.value.status_code == 404
        assert raised.value.json["error"]["code"] == "NOT_FOUND"
