"""The Ray head the ``ray`` tests submit to: ``scripts/services`` starts one on 127.0.0.1 and prints its address.

Without ``YOLOSTACK_TEST_RAY_ADDRESS`` the tests skip on a developer's machine (no ray installed) and
fail in CI, where the dev extra installs ray and the services script must have started the head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.database import IN_CI


@dataclass(frozen=True)
class RayCluster:
    address: str
    token: str | None

    def http(self) -> httpx.Client:
        """A client of the cluster's Jobs API, to look at what the executor did."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.address, headers=headers, timeout=30)

    def job(self, submission_id: str) -> dict[str, object]:
        with self.http() as http:
            response = http.get(f"/api/jobs/{submission_id}")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def resources(self) -> dict[str, float]:
        """What the cluster's nodes offer together (CPU, GPU, accelerator_type:…)."""
        with self.http() as http:
            response = http.get("/api/v0/nodes", params={"detail": "1"})
        assert response.status_code == 200, response.text
        total: dict[str, float] = {}
        for node in response.json()["data"]["result"]["result"]:
            for name, amount in (node.get("resources_total") or {}).items():
                total[name] = total.get(name, 0) + amount
        return total


def ray_cluster() -> RayCluster:
    address = os.environ.get("YOLOSTACK_TEST_RAY_ADDRESS")
    if not address:
        if IN_CI:
            pytest.fail("CI needs YOLOSTACK_TEST_RAY_ADDRESS (scripts/services starts a Ray head)")
        pytest.skip('no Ray head: install the ray extra and run `eval "$(scripts/services)"`')
    return RayCluster(address, os.environ.get("YOLOSTACK_TEST_RAY_TOKEN") or None)
