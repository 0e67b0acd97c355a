"""The HUB inference API: ``POST /`` with form ``model`` (a HUB model URL, an id or ``ul://owner/project/model``)
and the legacy ``POST /v1/predict/{modelId}``; ``x-api-key`` or Bearer; its own budget of calls per hour per key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.inference.conftest import (
    CONF,
    IMGSZ,
    Samples,
    Served,
    Stack,
    assert_same_results,
    image_form,
    predict,
    reference,
    serve,
)

# What this checks (the HUB forms, its budget and model references: the database only finds the model) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

# The HUB documents' own snippet sends iou 0.45; the Platform routes default to 0.7.
PARAMS: dict[str, Any] = {"imgsz": IMGSZ, "conf": CONF, "iou": 0.45}


def hub_refs(served: Served) -> dict[str, str]:
    return {
        "hub-url": f"https://hub.ultralytics.com/models/{served.model_id}",
        "id": served.model_id,
        "ul": f"ul://{served.ref}",
    }


class TestHubPredict:
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize("ref", ["hub-url", "id", "ul"])
    async def test_model_field_forms(self, served: Served, reference_model: Any, samples: Samples, ref: str) -> None:
        model = hub_refs(served)[ref]
        body = await predict(served.client, "/", served.alice, samples.square, model=model, **PARAMS)
        assert set(body) == {"success", "images", "metadata"}
        (entry,) = body["images"]
        assert entry["shape"] == [128, 128]
        assert_same_results(entry["results"], reference(reference_model, samples.square, **PARAMS), conf=CONF)
        assert body["metadata"]["model"] == served.model_id
        assert body["metadata"]["task"] == "detect"
        assert body["metadata"]["imageCount"] == 1

    @pytest.mark.parametrize("scheme", ["x-api-key", "bearer"])
    async def test_key_in_either_header(self, served: Served, samples: Samples, scheme: str) -> None:
        key = served.alice.key
        headers = {"x-api-key": key} if scheme == "x-api-key" else {"Authorization": f"Bearer {key}"}
        form = image_form(samples.square, model=served.model_id, **PARAMS)
        body = ok(await served.client.post("/", headers=headers, **form))
        assert body["images"][0]["results"]

    async def test_answers_like_the_platform_route(self, served: Served, samples: Samples) -> None:
        hub = await predict(served.client, "/", served.alice, samples.square, model=served.model_id, **PARAMS)
        platform = await predict(served.client, served.client_path, served.alice, samples.square, **PARAMS)
        assert hub["images"][0]["results"] == platform["images"][0]["results"]
        assert hub["metadata"]["classNames"] == platform["metadata"]["classNames"] == ["square", "circle"]

    async def test_unknown_model_is_404(self, served: Served, samples: Samples) -> None:
        for model in ("model_doesnotexist0000000", "ul://alice/shapes/nothing", "https://hub.ultralytics.com/models/x"):
            response = await served.client.post(
                "/", headers=served.alice.headers, **image_form(samples.square, model=model)
            )
            assert_error(response, 404, "NOT_FOUND")

    @pytest.mark.parametrize("field", ["image", "file"])
    async def test_legacy_route_takes_image_or_file(
        self, served: Served, reference_model: Any, samples: Samples, field: str
    ) -> None:
        path = f"/v1/predict/{served.model_id}"
        body = await predict(served.client, path, served.alice, samples.square, field=field, **PARAMS)
        assert set(body) == {"success", "images", "metadata"}
        assert body["metadata"]["model"] == served.model_id
        expected = reference(reference_model, samples.square, **PARAMS)
        assert_same_results(body["images"][0]["results"], expected, conf=CONF)

    async def test_legacy_route_with_x_api_key(self, served: Served, samples: Samples) -> None:
        form = image_form(samples.square, field="image", **PARAMS)
        body = ok(
            await served.client.post(f"/v1/predict/{served.model_id}", headers={"x-api-key": served.alice.key}, **form)
        )
        assert body["metadata"]["imageCount"] == 1

    async def test_other_accounts_model_is_404(self, served: Served, samples: Samples) -> None:
        for model in hub_refs(served).values():
            response = await served.client.post(
                "/", headers=served.bob.headers, **image_form(samples.square, model=model)
            )
            assert_error(response, 404, "NOT_FOUND")


class TestHubRequest:
    """What is decided before the model is needed: the ``model`` field and the parameter ranges."""

    @pytest.mark.parametrize("model", [None, "", "   "])
    async def test_missing_model_is_422(self, stack: Stack, small_image: Path, model: str | None) -> None:
        extra = {} if model is None else {"model": model}
        response = await stack.client.post("/", headers=stack.alice.headers, **image_form(small_image, **extra))
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert "model" in body["error"]["message"]

    @pytest.mark.parametrize("model", ["ul://alice/cars", "ul://alice//empty", "ul://a/b/c/d"])
    async def test_malformed_ul_reference_is_422(self, stack: Stack, small_image: Path, model: str) -> None:
        response = await stack.client.post("/", headers=stack.alice.headers, **image_form(small_image, model=model))
        assert_error(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize(("name", "value"), [("iou", "0.96"), ("iou", "-0.1"), ("conf", "0"), ("imgsz", "2000")])
    @pytest.mark.parametrize("route", ["hub", "hub-legacy"])
    async def test_parameter_ranges_are_enforced(
        self,
        stack: Stack,
        small_image: Path,
        route: str,
        name: str,
        value: str,
    ) -> None:
        path, extra = ("/", {"model": stack.empty.id}) if route == "hub" else (f"/v1/predict/{stack.empty.id}", {})
        response = await stack.client.post(
            path, headers=stack.alice.headers, **image_form(small_image, **extra, **{name: value})
        )
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == name

    async def test_ul_reference_resolves_by_slug(self, stack: Stack, small_image: Path) -> None:
        """``ul://alice/cars/empty`` finds the model (which has no weights yet: 409, not 404)."""
        form = image_form(small_image, model=f"ul://{stack.empty.ref}")
        assert_error(await stack.client.post("/", headers=stack.alice.headers, **form), 409, "CONFLICT")


class TestHubRateLimit:
    pytestmark = pytest.mark.slow

    async def test_hourly_budget_is_separate_from_the_general_one(self, served: Served, samples: Samples) -> None:
        alice = served.alice
        async with serve(served, rate_limits={"hub_per_hour": 3}) as http:
            for index in range(3):
                path, extra = (
                    ("/", {"model": served.model_id}) if index % 2 == 0 else (f"/v1/predict/{served.model_id}", {})
                )
                response = await http.post(path, headers=alice.headers, **image_form(samples.square, **extra))
                ok(response)
                assert response.headers["X-RateLimit-Limit"] == "3"
                assert response.headers["X-RateLimit-Remaining"] == str(2 - index)
            for path, extra in (("/", {"model": served.model_id}), (f"/v1/predict/{served.model_id}", {})):
                refused = await http.post(path, headers=alice.headers, **image_form(samples.square, **extra))
                body = assert_error(refused, 429, "RATE_LIMITED")
                assert int(refused.headers["Retry-After"]) > 0
                assert body["error"]["details"] == {"limit": 3, "windowSeconds": 3600}
            # The same key still has its general (per-minute, by plan) budget on the Platform routes.
            for path in (served.seed_path, served.client_path):
                response = await http.post(path, headers=alice.headers, **image_form(samples.square))
                ok(response)
                assert response.headers["X-RateLimit-Limit"] != "3"
            # Another key has a budget of its own: Bob gets as far as finding he may not read Alice's model.
            form = image_form(samples.square, model=served.model_id)
            assert_error(await http.post("/", headers=served.bob.headers, **form), 404, "NOT_FOUND")
