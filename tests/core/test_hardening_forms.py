"""Non-finite and overflowing numbers in multipart form fields (predict's conf, iou, imgsz, …) are a 422
``VALIDATION_ERROR`` naming the field, on every predict route, before any model is looked up."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.assertions import assert_error
from tests.fixtures.factories import User

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1e400"]
FIELDS = ["conf", "iou", "imgsz", "decimals", "vid_stride"]
ROUTES = ["/api/models/model_x/predict", "/", "/v1/predict/model_x"]
IMAGE = {"file": ("a.jpg", b"\xff\xd8\xff" + b"\x00" * 64, "image/jpeg")}


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_non_finite_form_numbers_are_422(client: httpx.AsyncClient, alice: User, route: str) -> None:
    for name in FIELDS:
        for value in NON_FINITE:
            data = {name: value, "model": "model_x"}
            response = await client.post(route, data=data, files=IMAGE, headers={"x-api-key": alice.key})
            body = assert_error(response, 422, "VALIDATION_ERROR")
            assert body["error"]["details"][0]["field"] == name, (route, name, value, body)
