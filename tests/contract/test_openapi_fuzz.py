"""Schemathesis against a live ``yolostack serve``: every operation of /openapi.json, stateful links included.

The run is bounded by time (``FUZZ_SECONDS``: its fuzzing and stateful phases repeat until it is spent) and
its figures are printed in the run's summary: operations, cases, 5xx, schema
violations. It passes with zero 5xx and zero responses that break the documented contract (status code,
content type, body schema). PostgreSQL when the suite has it (strict types find more), else SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.database import BACKENDS
from tests.fixtures.server import LiveServer, serving

pytestmark = [pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).parent / "st"
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
FUZZ_SECONDS = int(os.environ.get("YOLOSTACK_FUZZ_SECONDS", "150"))
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
SERVER_ERRORS = {"ST101", "ST102"}
# The fuzzer is one key sending thousands of requests: lift the rate limits and run no jobs or replicas.
UNLIMITED = {
    f"YOLOSTACK_RATE_LIMITS__{plan}__{window}": "100000000"
    for plan in ("FREE", "PRO", "ENTERPRISE")
    for window in ("PER_MINUTE", "PER_DAY")
}


@pytest.fixture(scope="module")
async def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    backend = "postgres" if "postgres" in BACKENDS else "sqlite"
    env = {
        "YOLOSTACK_RATE_LIMITS__HUB_PER_HOUR": "100000000",
        "YOLOSTACK_JOBS__RUN_JOBS": "false",
        "YOLOSTACK_DEPLOYMENTS__RUN_REPLICAS": "false",
        **UNLIMITED,
    }
    # A loaded 2-core machine can take its time to start.
    async with serving(backend, tmp_path_factory.mktemp(f"fuzz-{backend}"), env, timeout=120) as server:
        yield server


def figures(report: dict[str, Any]) -> dict[str, int]:
    failures = report["failures"]
    return {
        "operations": report["operations"]["tested"],
        "cases": report["test_cases"]["generated"],
        "server_errors": sum(failure["count"] for failure in failures if failure["code"] in SERVER_ERRORS),
        "violations": sum(failure["count"] for failure in failures if failure["code"] not in SERVER_ERRORS),
        "errors": len(report["errors"]),
    }


def test_no_operation_answers_5xx_or_breaks_its_schema(
    fuzz_server: LiveServer, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    report_path = tmp_path / "schemathesis.json"
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{fuzz_server.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {fuzz_server.key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "5",
        "--max-time",
        str(FUZZ_SECONDS),
        # One worker: with two threads hypothesis' concurrent ast.parse hits a CPython 3.11 bug
        # ("AST constructor recursion depth mismatch") that errors an operation's test now and then.
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-shrink",
        "--wait-for-schema",
        "60",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    keys = httpx.get(
        f"{fuzz_server.base_url}/api/api-keys", headers={"Authorization": f"Bearer {fuzz_server.key}"}, timeout=30
    ).json()["keys"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "YOLOSTACK_FUZZ_KEY_ID": keys[0]["keyId"]}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=FUZZ_SECONDS + 180, check=False, cwd=tmp_path, env=env
    )
    assert report_path.exists(), run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    counts = figures(report)
    line = (
        f"fuzzer: {counts['operations']} operations, {counts['cases']} cases, "
        f"{counts['server_errors']} 5xx, {counts['violations']} schema violations, {counts['errors']} errors"
    )
    # tests/conftest.py prints it in the run's summary (from xdist workers too).
    record_property("fuzzer", line)
    assert counts["operations"] >= 90, line
    # The server's own account of its 5xx: everything it logged but the access lines.
    logged = "".join(entry for entry in fuzz_server.lines if not entry.startswith("INFO:"))[-10000:]
    assert counts["server_errors"] == 0, f"{line}\n{run.stdout[-20000:]}\nserver log:\n{logged}"
    assert counts["violations"] == 0, f"{line}\n{run.stdout[-20000:]}"
    assert counts["errors"] == 0, f"{line}\n{json.dumps(report['errors'])[:5000]}\n{run.stdout[-20000:]}"
