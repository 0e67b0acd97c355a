"""Every key-needing route requires a scope: walked over the app's routes, so a new route without one fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_model, create_user
from tests.fixtures.trash import create_project
from yolostack.app import create_app
from yolostack.auth.dependencies import Authenticator, HubAuthenticator, needs_key
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.core.ids import new_id
from yolostack.deployments.tasks import ARTIFACT_PURPOSE
from yolostack.tables import Job, JobKind

# Key-needing routes that any valid key may call, each with why.
SCOPE_FREE = {
    # `ul cloud train` resolves a "user/project" prefix with whatever key it holds (a training key, say): the
    # answer is a public profile (username, name, account type), nothing a key could not learn otherwise.
    ("GET", "/api/users"),
}
# Key-needing routes that authenticate inside the route rather than in a dependency, with the scope they require
# there (checked below by calling them with a key that lacks it).
SCOPED_IN_ROUTE = {
    # A deployment's own URL relays the raw body to its replicas untouched, so no dependency parses it.
    ("POST", "/d/{deployment_id}"): "inference",
    ("POST", "/d/{deployment_id}/predict"): "inference",
}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def required_scopes(route: RouteContext) -> tuple[str, ...] | None:
    """The scopes the route's authenticator asks for (any one of them), or None when it has no authenticator."""
    for call in _calls(route.dependant):
        if isinstance(call, Authenticator | HubAuthenticator):
            return tuple(str(scope) for scope in call.scopes)
    return None


def key_routes(app: FastAPI) -> Iterator[tuple[str, str, RouteContext]]:
    """Every (method, path) the key rule covers, routers included at any depth."""
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.path is None:
            continue
        for method in sorted(route.methods or ()):
            if needs_key(route.path, method):
                yield method, route.path, route


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str, RouteContext]]:
    return list(key_routes(create_app(Settings.model_validate({"environment": "testing"}))))


class TestEveryRouteHasAScope:
    def test_the_walk_sees_the_api(self, routes: list[tuple[str, str, RouteContext]]) -> None:
        paths = {path for _, path, _ in routes}
        assert len(routes) > 80
        assert {"/api/jobs/{job_id}", "/api/projects", "/", "/v1/predict/{model_id}"} <= paths

    def test_every_key_route_requires_a_scope(self, routes: list[tuple[str, str, RouteContext]]) -> None:
        unscoped = {(method, path) for method, path, route in routes if not required_scopes(route)}
        expected = SCOPE_FREE | set(SCOPED_IN_ROUTE)
        assert unscoped == expected, f"routes without a scope: {sorted(unscoped - expected)}"

    def test_every_key_route_authenticates(self, routes: list[tuple[str, str, RouteContext]]) -> None:
        missing = {(method, path) for method, path, route in routes if required_scopes(route) is None}
        assert missing == set(SCOPED_IN_ROUTE), f"routes under the key rule without an authenticator: {missing}"

    def test_signed_token_routes_are_not_key_routes(self, routes: list[tuple[str, str, RouteContext]]) -> None:
        assert ("GET", "/api/deployments/{deployment_id}/artifacts/{name}") not in {(m, p) for m, p, _ in routes}

    def test_jobs_need_a_job_scope(self, routes: list[tuple[str, str, RouteContext]]) -> None:
        jobs = {
            (method, path): required_scopes(route) for method, path, route in routes if path.startswith("/api/jobs")
        }
        assert len(jobs) == 4
        assert set(jobs.values()) == {("training", "exports", "datasets")}


class TestJobScopes:
    """The job routes ask for the job's own kind: a training run needs ``training``, an export ``exports``, an
    ingest ``datasets``."""

    async def test_a_key_without_job_scopes_is_403(self, client: httpx.AsyncClient, database: Database) -> None:
        scoped = await create_user(database, "carol", scopes=["projects"])
        for path in ("/api/jobs/job_x", "/api/jobs/job_x/logs"):
            assert_error(await client.get(path, headers=scoped.headers), 403, "FORBIDDEN")
        assert_error(await client.post("/api/jobs/job_x/events", json={}, headers=scoped.headers), 403, "FORBIDDEN")

    async def test_a_job_scope_reaches_the_route(self, client: httpx.AsyncClient, database: Database) -> None:
        for scope in ("training", "exports", "datasets"):
            scoped = await create_user(database, f"carol-{scope}", scopes=[scope])
            assert_error(await client.get("/api/jobs/job_x", headers=scoped.headers), 404, "NOT_FOUND")

    async def test_the_job_kind_decides(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "jobs")
        model_id = await create_model(database, alice, project_id, "m")
        async with database.sessionmaker() as session, session.begin():
            job = Job(id=new_id("job"), owner_id=alice.account.id, model_id=model_id, kind=JobKind.training)
            session.add(job)
        exports_only = {"x-api-key": await add_key(database, alice, scopes=["exports"])}
        training = {"x-api-key": await add_key(database, alice, scopes=["training"])}
        assert_error(await client.get(f"/api/jobs/{job.id}", headers=exports_only), 403, "FORBIDDEN")
        assert ok(await client.get(f"/api/jobs/{job.id}", headers=training))["job"]["id"] == job.id
        ok(await client.get(f"/api/jobs/{job.id}/logs", headers=training))

    async def test_routes_scoped_in_the_route_refuse_other_scopes(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        scoped = await create_user(database, "carol", scopes=["projects"])
        for method, path in SCOPED_IN_ROUTE:
            response = await client.request(method, path.format(deployment_id="dep_x"), headers=scoped.headers)
            assert_error(response, 403, "FORBIDDEN")

    async def test_an_artifact_token_reaches_its_route(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        """A replica's signed token is not an API key: the route, not the key check, judges it."""
        token = app.state.file_links.signer.sign(ARTIFACT_PURPOSE, {"d": "dep_x", "g": 1}, expires_in=60)
        path = "/api/deployments/dep_x/artifacts/model.pt"
        assert_error(await client.get(path, headers={"Authorization": f"Bearer {token}"}), 404, "NOT_FOUND")
        body = assert_error(await client.get(path, headers={"Authorization": "Bearer forged"}), 401, "UNAUTHORIZED")
        assert "artifact token" in body["error"]["message"]

    async def test_users_lookup_takes_any_key(self, client: httpx.AsyncClient, database: Database) -> None:
        scoped = await create_user(database, "carol", scopes=["training"])
        body = ok(await client.get("/api/users", params={"username": "carol"}, headers=scoped.headers))
        assert body["user"]["username"] == "carol"
