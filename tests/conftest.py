import os

import pytest

# The real clients read these at import: keep ultralytics offline, quiet and out of the user's config.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.app", "tests.fixtures.storage", "tests.fixtures.detector"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _run_sqlite_only_where_marked(config, items)
    _group_for_workers(items)


def _run_sqlite_only_where_marked(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.sqlite_only``: what the test checks does not depend on the database (media decoding, the
    engine, signed links, middleware), so its PostgreSQL run would only repeat the SQLite one."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        # The backend is a fixture's parameter ("sqlite" / "postgres"): database_url, live_server, …
        on_postgres = callspec is not None and "postgres" in callspec.params.values()
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _group_for_workers(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (scripts/test) a file's tests stay on one worker, so its module and
    session fixtures (trained models, live servers) are built once; every test on the one shared Ray head runs
    on a single worker, since a Serve config is declarative (one server's applications replace another's)."""
    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker under ``--dist loadgroup``, xdist has appended each item's group to its node id; if it
    could not (a pytest it does not know how to patch), the groups are silently ignored, so refuse to run."""
    if getattr(session.config.option, "loadgroup", False) and any("@" not in item.nodeid for item in session.items):
        raise pytest.UsageError(
            "pytest-xdist did not apply the xdist_group marks (see the pytest pin in pyproject.toml)"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The OpenAPI fuzzer's figures (tests/contract) at the end of the run, whichever xdist worker ran it: only this
    root conftest is loaded by xdist's controlling process, which writes the summary."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "fuzzer":
                    terminalreporter.write_line(str(value))
