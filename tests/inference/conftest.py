"""A detector that is ready to serve, converted once per database backend, and apps to predict with it.

Converting a checkpoint takes a subprocess and up to a minute, so the trained detector is uploaded once per
session into a database and data directory of their own (``stack``; the function-scoped ``app`` fixture
empties its database before every test, which would drop the model). ``stack.client`` talks to one long-lived
app over them; ``serve(served, **overrides)`` starts another app over the same database and files with other
settings. Tests that do not need the converted model (``served``) use the stack alone and are not ``slow``.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import ok
from tests.fixtures.database import dispose_database_url, new_database_url
from tests.fixtures.detector import TrainedDetector
from tests.fixtures.factories import User, create_user
from tests.models.helpers import create_model, create_project, uploaded_model, wait_for_serving
from yolostack.app import create_app
from yolostack.core import db
from yolostack.core.db import Database
from yolostack.tables import Plan

CONVERSION_TIMEOUT = 600.0
# The detector was trained at 128 px and is unsure of itself: its boxes score about 0.01–0.02.
IMGSZ = 128
CONF = 0.01
CONF_TOL = 1e-3
BOX_PX = 1.0


@dataclass(frozen=True)
class EmptyModel:
    """A model row without weights (no conversion): enough for what is decided before the model is needed."""

    id: str
    ref: str


@dataclass(frozen=True)
class Stack:
    """A database and data directory of the session's backend, kept for the whole session, with one app over them.

    Alice owns ``alice/cars/empty``, a model without weights.
    """

    database_url: str
    data_dir: Path
    database: Database
    client: httpx.AsyncClient
    alice: User
    bob: User
    empty: EmptyModel


@dataclass(frozen=True)
class Served:
    """Alice's converted detector ``alice/shapes/detector`` (private), in the stack."""

    stack: Stack
    model_id: str
    project: str
    model: str
    detector: TrainedDetector

    @property
    def client(self) -> httpx.AsyncClient:
        return self.stack.client

    @property
    def alice(self) -> User:
        return self.stack.alice

    @property
    def bob(self) -> User:
        return self.stack.bob

    @property
    def ref(self) -> str:
        """``owner/project/model``, as the clients address it."""
        return f"{self.alice.username}/{self.project}/{self.model}"

    @property
    def seed_path(self) -> str:
        return f"/api/models/{self.model_id}/predict"

    @property
    def client_path(self) -> str:
        return f"/api/models/{self.ref}/predict"


@asynccontextmanager
async def serve(served: Served, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Another app over the stack's database and files, with other settings (and a rate limiter of its own)."""
    stack = served.stack
    application = create_app(make_settings(stack.database_url, stack.data_dir, **overrides))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture(scope="session")
async def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A fresh database of the session's backend: the ``app`` fixture empties its own before every test."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    work = tmp_path_factory.mktemp(f"stack-{backend}")
    url = await new_database_url(backend, work)
    try:
        await asyncio.to_thread(db.upgrade, url)
        # One limiter sees every test's calls: budgets no test run comes near (the limits have tests of their own).
        # Deployment tests start apps of their own over this database that run replicas: this one runs none.
        settings = make_settings(
            url, work / "data", rate_limits={"hub_per_hour": 100_000}, deployments={"run_replicas": False}
        )
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            database: Database = application.state.database
            alice = await create_user(database, "alice", plan=Plan.enterprise)
            bob = await create_user(database, "bob", plan=Plan.enterprise)
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                await create_project(http, alice, "cars")
                empty = await create_model(http, alice, "cars", model="empty", task="detect")
                yield Stack(
                    database_url=url,
                    data_dir=settings.data_dir,
                    database=database,
                    client=http,
                    alice=alice,
                    bob=bob,
                    empty=EmptyModel(id=empty["id"], ref="alice/cars/empty"),
                )
    finally:
        await dispose_database_url(backend, url)


@pytest.fixture(scope="session")
async def served(stack: Stack, trained_detector: TrainedDetector) -> Served:
    """The trained detector uploaded by Alice (multipart ``POST /api/models``) and converted for serving."""
    project_id = await create_project(stack.client, stack.alice, "shapes")
    weights = trained_detector.weights.read_bytes()
    uploaded = await uploaded_model(
        stack.client, stack.alice, project_id, data=weights, filename="shapes.pt", name="detector"
    )
    model = await wait_for_serving(stack.client, stack.alice, uploaded["id"], timeout=CONVERSION_TIMEOUT)
    assert model["serving"] == {"status": "ready", "error": None}, model["serving"]
    return Served(
        stack=stack, model_id=uploaded["id"], project="shapes", model=uploaded["slug"], detector=trained_detector
    )


def image_form(path: Path, field: str = "file", **params: Any) -> dict[str, Any]:
    """``httpx`` keyword arguments for a multipart predict with one image file and form parameters."""
    return {
        "files": {field: (path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "image/jpeg")},
        "data": {name: str(value) for name, value in params.items()},
    }


async def predict(
    http: httpx.AsyncClient, path: str, user: User, image: Path, *, field: str = "file", **params: Any
) -> dict[str, Any]:
    """A successful predict of one image; returns the body."""
    response = await http.post(path, headers=user.headers, **image_form(image, field, **params))
    return ok(response)


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    """Any small JPEG, for requests that are decided before the image is read."""
    path = tmp_path / "small.jpg"
    assert cv2.imwrite(str(path), np.full((16, 24, 3), 90, np.uint8))
    return path


@pytest.fixture(scope="session")
def reference_model(trained_detector: TrainedDetector) -> Any:
    """ultralytics' own ``YOLO`` over the same checkpoint the server converted (imported only when needed)."""
    from ultralytics.models.yolo.model import YOLO

    return YOLO(trained_detector.weights)


def reference(model: Any, source: Path, **options: Any) -> list[dict[str, Any]]:
    """``YOLO(pt).predict(source, **options)[0].summary()``: what every ``results`` list must equal."""
    result = model.predict(str(source), verbose=False, **options)[0]
    return list(result.summary())


@dataclass(frozen=True)
class Samples:
    """Images in which ultralytics finds something clear of the threshold, so comparisons are never vacuous."""

    square: Path  # one of the detector's 128x128 validation images
    wide: Path  # one of them widened to 128x192: ``shape`` is [h, w] and normalize divides x by 192


def widen(source: Path, target: Path) -> Path:
    """The image widened to 128x192 by a grey band on the right."""
    image = cv2.imread(str(source))
    assert image is not None
    wide = cv2.copyMakeBorder(image, 0, 0, 0, 64, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    assert cv2.imwrite(str(target), wide)
    return target


@pytest.fixture(scope="session")
def samples(
    trained_detector: TrainedDetector, reference_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> Samples:
    work = tmp_path_factory.mktemp("samples")

    def clear(image: Path) -> bool:
        rows = reference(reference_model, image, imgsz=IMGSZ, conf=CONF)
        return any(row["confidence"] >= CONF + 2 * CONF_TOL for row in rows)

    square = next((image for image in trained_detector.images if clear(image)), None)
    wide = next(
        (path for image in trained_detector.images if clear(path := widen(image, work / f"wide-{image.stem}.png"))),
        None,
    )
    assert square is not None, "the trained detector finds nothing in its validation images"
    assert wide is not None, "the trained detector finds nothing in its widened validation images"
    return Samples(square=square, wide=wide)


def _twins(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    if (ours["name"], ours["class"]) != (theirs["name"], theirs["class"]):
        return False
    if abs(ours["confidence"] - theirs["confidence"]) > CONF_TOL:
        return False
    return all(abs(ours["box"][key] - theirs["box"][key]) <= BOX_PX for key in theirs["box"])


def assert_same_results(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], *, conf: float) -> None:
    """Row for row the reference's summary (class, confidence within 1e-3, box within 1 px, same key order).

    A row scoring within the tolerance of ``conf`` may be on either side of the threshold in either runtime.
    """
    unmatched = list(ours)
    for row in theirs:
        twin = next((candidate for candidate in unmatched if _twins(candidate, row)), None)
        if twin is None:
            assert row["confidence"] < conf + CONF_TOL, f"ultralytics found {row}; the server answered {ours}"
            continue
        assert list(twin) == list(row)
        assert list(twin["box"]) == list(row["box"])
        unmatched.remove(twin)
    assert all(row["confidence"] < conf + CONF_TOL for row in unmatched), f"not in ultralytics' results: {unmatched}"
