"""Webhook tests: receivers listen on loopback, so private addresses are allowed; retries are quick."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.app import make_settings
from yolostack.config import Settings

QUICK_RETRIES = [0.2, 0.2, 0.2, 0.2]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path / "data",
        webhooks={
            "allow_private_urls": True,
            "retry_schedule": QUICK_RETRIES,
            "poll_interval_seconds": 0.1,
            "timeout_seconds": 5,
        },
    )
