import os

import pytest

# The real clients read these at import: keep ultralytics offline, quiet and out of the user's config.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.app", "tests.fixtures.storage", "tests.fixtures.detector"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (scripts/test) a file's tests stay on one worker, so its module and
    session fixtures (trained models, live servers) are built once; every test on the one shared Ray head runs
    on a single worker, since a Serve config is declarative (one server's applications replace another's)."""
    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
