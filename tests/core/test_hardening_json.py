"""Strict JSON for every body: non-finite numbers, overflowing numbers, deep nesting and lone surrogates are a
422 ``VALIDATION_ERROR`` on typed and hand-parsed routes alike, never a 500, never stored altered."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from yolostack.core.errors import BadRequest
from yolostack.core.validation import MAX_JSON_DEPTH, StrictJsonError, check_json_body, loads_strict

JSON = {"content-type": "application/json"}
# Bodies Python's json module reads (so a hand-written request.json() would) and strict JSON refuses.
HOSTILE = {
    "nan": b'{"name": "p1", "description": NaN}',
    "infinity": b'{"name": "p1", "description": Infinity}',
    "minus-infinity": b'{"name": "p1", "description": -Infinity}',
    "overflowing-float": b'{"name": "p1", "description": 1e400}',
    "overflowing-int": b'{"name": "p1", "description": 18446744073709551616}',
    "lone-surrogate": b'{"name": "p1\\ud800", "description": "x"}',
    "lone-surrogate-key": b'{"name": "p1", "metadata": {"\\udfff": 1}}',
    "deep": b'{"name": "p1", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    "just-too-deep": b'{"name": "p1", "metadata": {"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}}",
    "nul": b'{"name": "p1", "description": "a\\u0000b"}',
    "utf16": '{"name": "p1", "description": NaN}'.encode("utf-16"),
}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class TestStrictParser:
    @pytest.mark.parametrize(
        "text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "[1.0, 1e309]", '{"a": [NaN]}'], ids=str
    )
    def test_non_finite_numbers_are_refused(self, text: str) -> None:
        with pytest.raises(StrictJsonError):
            loads_strict(text.encode())

    def test_integers_stop_at_64_bits(self) -> None:
        assert loads_strict(str(2**63 - 1).encode()) == 2**63 - 1
        assert loads_strict(str(-(2**63)).encode()) == -(2**63)
        for value in (2**63, -(2**63) - 1, 10**30):
            with pytest.raises(StrictJsonError):
                loads_strict(str(value).encode())

    def test_nesting_is_bounded_without_recursion_error(self) -> None:
        assert loads_strict(nested(MAX_JSON_DEPTH)) == loads_strict(nested(MAX_JSON_DEPTH))
        for depth in (MAX_JSON_DEPTH + 1, 5_000, 1_000_000):
            with pytest.raises(StrictJsonError, match="nests deeper"):
                loads_strict(nested(depth))

    def test_lone_surrogates_are_refused_and_pairs_kept(self) -> None:
        assert loads_strict(b'"\\ud83d\\ude00"') == "\N{GRINNING FACE}"
        for text in (b'"\\ud800"', b'"a\\udc00b"', b'{"\\ud800": 1}', b'["ok", {"k": ["\\udbff"]}]'):
            with pytest.raises(StrictJsonError, match="surrogate"):
                loads_strict(text)

    def test_nul_characters_are_refused(self) -> None:
        # Valid JSON, but PostgreSQL text cannot hold one: refused on both databases rather than stored altered.
        for text in (b'"\\u0000"', b'{"k\\u0000": 1}', b'["a", ["b\\u0000c"]]'):
            with pytest.raises(StrictJsonError, match="NUL"):
                loads_strict(text)

    def test_raw_invalid_utf8_is_not_json(self) -> None:
        for data in (b'"\xed\xa0\x80"', b'"\xff"', b'{"a": "\xc3"}'):
            with pytest.raises(ValueError) as caught:
                loads_strict(data)
            assert not isinstance(caught.value, StrictJsonError)

    def test_ordinary_documents_are_unchanged(self) -> None:
        document = {"a": [1, 2.5, -0.0, 1e308, None, True, "é\N{GRINNING FACE}"], "b": {"c": "x" * 1000}}
        assert loads_strict(json.dumps(document).encode()) == document
        assert loads_strict(b"\xef\xbb\xbf{}") == {}  # a UTF-8 BOM may lead


class TestBodyCheck:
    def test_a_body_that_is_not_json_is_left_to_the_route(self) -> None:
        for data in (b"", b"  ", b"name=x&y=2", b"\x89PNG\r\n\x1a\n", b"hello"):
            check_json_body(data, declared_json=False)

    def test_a_body_declared_json_must_parse(self) -> None:
        with pytest.raises(BadRequest, match="invalid JSON body"):
            check_json_body(b"{oops", declared_json=True)

    def test_a_body_python_would_read_must_be_strict_whatever_its_type(self) -> None:
        for data in HOSTILE.values():
            with pytest.raises(BadRequest):
                check_json_body(data, declared_json=False)


class TestRoutes:
    @pytest.mark.parametrize("case", sorted(HOSTILE), ids=str)
    async def test_typed_route_refuses_and_stores_nothing(
        self, client: httpx.AsyncClient, alice: User, case: str
    ) -> None:
        response = await client.post("/api/projects", content=HOSTILE[case], headers={**alice.headers, **JSON})
        assert_error(response, 422, "VALIDATION_ERROR")
        assert ok(await client.get("/api/projects", headers=alice.headers))["meta"]["total"] == 0

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", None], ids=str)
    async def test_hand_parsed_routes_refuse_whatever_the_content_type(
        self, client: httpx.AsyncClient, alice: User, content_type: str | None
    ) -> None:
        headers = {**alice.headers, **({"content-type": content_type} if content_type else {})}
        for path in ("/api/training/start", "/api/models", "/api/webhooks/training/metrics", "/api/jobs/job_x/events"):
            for case in ("nan", "overflowing-float", "deep", "lone-surrogate"):
                response = await client.post(path, content=HOSTILE[case], headers=headers)
                assert_error(response, 422, "VALIDATION_ERROR")

    async def test_refused_before_the_route_sees_it(self, client: httpx.AsyncClient, alice: User) -> None:
        body = assert_error(
            await client.post("/api/projects", content=b'{"name": NaN}', headers={**alice.headers, **JSON}),
            422,
            "VALIDATION_ERROR",
        )
        assert "NaN" in body["error"]["message"]
        assert body["error"]["details"][0]["message"]

    async def test_query_and_path_are_not_bodies(self, client: httpx.AsyncClient, alice: User) -> None:
        ok(await client.get("/api/projects", params={"search": "NaN"}, headers=alice.headers))

    async def test_strict_json_is_stored_as_sent(self, client: httpx.AsyncClient, alice: User) -> None:
        metadata = {"big": 2**63 - 1, "tiny": 5e-324, "text": "é\N{GRINNING FACE}", "deep": json.loads(nested(40))}
        created = ok(
            await client.post("/api/projects", json={"name": "p1", "metadata": metadata}, headers=alice.headers), 201
        )
        stored = ok(await client.get(f"/api/projects/{created['data']['id']}", headers=alice.headers))
        assert stored["data"]["metadata"] == metadata
