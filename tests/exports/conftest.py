from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.app import make_settings
from yolostack.config import Settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """No dispatcher launches: endpoint tests see queued exports stay queued and play the runner themselves."""
    return make_settings(database_url, tmp_path / "data", jobs={"run_jobs": False})
