"""Form fields: non-finite and overflowing numbers (predict's conf, iou, imgsz, …) are a 422 ``VALIDATION_ERROR``
naming the field, on every predict route, before any model is looked up; text that is not UTF-8 is refused
rather than stored altered."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.fixtures.trash import create_project
from yolostack.core.errors import BadRequest
from yolostack.core.validation import MultipartTextCheck

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


def multipart(boundary: str, fields: list[tuple[str, bytes]], file: bytes) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in fields
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="best.pt"\r\n'
    parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + file + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


class TestFormText:
    """Form text that is not UTF-8 would be read as Latin-1 (multipart) or U+FFFD (url-encoded) and stored so."""

    async def upload(
        self, client: httpx.AsyncClient, alice: User, name: bytes, file: bytes = b"x" * 64
    ) -> httpx.Response:
        project_id = await create_project(client, alice, "forms")
        body = multipart("b0undary", [("projectId", project_id.encode()), ("name", name)], file)
        headers = {**alice.headers, "content-type": "multipart/form-data; boundary=b0undary"}
        return await client.post("/api/models", content=body, headers=headers)

    @pytest.mark.parametrize("name", [b"\xed\xa0\x80", b"caf\xe9", b"\xff\xfe", b"ok\xc3"], ids=repr)
    async def test_a_text_field_that_is_not_utf8_is_422_and_not_stored(
        self, client: httpx.AsyncClient, alice: User, name: bytes
    ) -> None:
        body = assert_error(await self.upload(client, alice, name), 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == "name"
        assert ok(await client.get("/api/models", headers=alice.headers))["meta"]["total"] == 0

    async def test_utf8_text_and_binary_files_are_kept(self, client: httpx.AsyncClient, alice: User) -> None:
        name = "modèle \N{GRINNING FACE}"
        created = ok(await self.upload(client, alice, name.encode(), file=b"\xff\xfe\xed\xa0\x80" * 100), 201)
        assert created["data"]["name"] == name

    async def test_an_urlencoded_value_that_is_not_utf8_is_422(self, client: httpx.AsyncClient, alice: User) -> None:
        headers = {**alice.headers, "content-type": "application/x-www-form-urlencoded"}
        for body in (b"source=%ED%A0%80&conf=0.5", b"conf=0.5&caf%E9=1"):
            response = await client.post("/api/models/model_x/predict", content=body, headers=headers)
            assert_error(response, 422, "VALIDATION_ERROR")


def feed_in_pieces(check: MultipartTextCheck, body: bytes, size: int) -> None:
    for start in range(0, len(body), size):
        check.feed(body[start : start + size])


class TestMultipartTextCheck:
    @pytest.mark.parametrize("size", [1, 3, 7, 4096], ids=str)
    def test_text_split_anywhere_is_judged_whole(self, size: int) -> None:
        good = multipart("bnd", [("name", "é\N{GRINNING FACE}".encode())], b"\xff" * 50)
        bad = multipart("bnd", [("name", b"ab\xed\xa0\x80")], b"")
        feed_in_pieces(MultipartTextCheck(b"bnd"), good, size)
        with pytest.raises(BadRequest, match="'name' is not valid UTF-8"):
            feed_in_pieces(MultipartTextCheck(b"bnd"), bad, size)

    def test_a_malformed_body_is_left_to_the_form_parser(self) -> None:
        check = MultipartTextCheck(b"bnd")
        check.feed(b"--bnd\r\nthis is no header\r\n\r\n\xff\xff")
        check.feed(b"--bnd--\r\n")
