"""The Platform's predict routes: ``POST /api/models/{modelId}/predict`` (seed) and
``POST /api/models/{owner}/{project}/{model}/predict`` (clients.md §1.7), against ultralytics' own results.

Tests marked ``slow`` use the session's converted detector (``served``); the others decide before a model is
needed and run on the function-scoped app with a model that has no weights.
"""

from __future__ import annotations

import http.server
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
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
from tests.models.helpers import create_project, uploaded_model

# What this checks (predict parameters, media and results: the database only finds the model) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

PARAMS: dict[str, Any] = {"imgsz": IMGSZ, "conf": CONF, "iou": 0.7}
ROUTES = ["seed", "client"]


def route_path(served: Served, route: str) -> str:
    return served.seed_path if route == "seed" else served.client_path


def four_routes(model_id: str, ref: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Every predict route for one model: (path, extra form fields)."""
    return {
        "seed": (f"/api/models/{model_id}/predict", {}),
        "client": (f"/api/models/{ref}/predict", {}),
        "hub": ("/", {"model": model_id}),
        "hub-legacy": (f"/v1/predict/{model_id}", {}),
    }


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and whose data is a few bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


class TestPredictResults:
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize("route", ROUTES)
    async def test_results_match_ultralytics(
        self, served: Served, reference_model: Any, samples: Samples, route: str
    ) -> None:
        found = 0
        for image in [samples.square, *served.detector.images[:3]]:
            body = await predict(served.client, route_path(served, route), served.alice, image, **PARAMS)
            expected = reference(reference_model, image, **PARAMS)
            found += len(expected)
            assert len(body["images"]) == 1
            assert_same_results(body["images"][0]["results"], expected, conf=CONF)
        assert found > 0, "the trained detector found nothing: the comparison would be empty"

    @pytest.mark.parametrize("route", ROUTES)
    async def test_image_has_shape_and_speed(
        self, served: Served, reference_model: Any, samples: Samples, route: str
    ) -> None:
        image = samples.wide
        body = await predict(served.client, route_path(served, route), served.alice, image, **PARAMS)
        (entry,) = body["images"]
        assert list(entry) == ["results", "shape", "speed"]
        assert entry["shape"] == [128, 192]
        assert set(entry["speed"]) == {"preprocess", "inference", "postprocess"}
        assert all(isinstance(value, float) and value >= 0 for value in entry["speed"].values())
        assert_same_results(entry["results"], reference(reference_model, image, **PARAMS), conf=CONF)

    @pytest.mark.parametrize("route", ROUTES)
    async def test_metadata_describes_the_model(self, served: Served, samples: Samples, route: str) -> None:
        body = await predict(served.client, route_path(served, route), served.alice, samples.square, **PARAMS)
        metadata = body["metadata"]
        assert metadata["imageCount"] == 1
        assert metadata["classNames"] == ["square", "circle"]
        assert metadata["model"] == served.model_id
        assert metadata["task"] == "detect"
        assert isinstance(metadata["version"], dict)
        assert metadata["version"]
        assert isinstance(metadata["functionTimeCall"], float)
        assert metadata["functionTimeCall"] > 0

    async def test_seed_route_adds_envelope_and_predictions(self, served: Served, samples: Samples) -> None:
        body = await predict(served.client, served.seed_path, served.alice, samples.square, **PARAMS)
        assert body["data"]["images"] == body["images"]
        assert body["data"]["metadata"]["model"] == served.model_id
        results = body["images"][0]["results"]
        assert results, "the detector found nothing in its own validation image"
        # The seed's example puts ``predictions`` at the top level, beside the envelope.
        assert set(body) == {"success", "data", "predictions", "images", "metadata"}
        assert [row["class"] for row in body["predictions"]] == [row["name"] for row in results]
        assert [row["classId"] for row in body["predictions"]] == [row["class"] for row in results]
        assert [row["confidence"] for row in body["predictions"]] == [row["confidence"] for row in results]
        assert [row["box"] for row in body["predictions"]] == [row["box"] for row in results]

    async def test_client_route_has_no_envelope(self, served: Served, samples: Samples) -> None:
        body = await predict(served.client, served.client_path, served.alice, samples.square, **PARAMS)
        assert set(body) == {"success", "images", "metadata"}

    @pytest.mark.parametrize("route", ROUTES)
    async def test_normalize_gives_fractions_of_the_image(self, served: Served, samples: Samples, route: str) -> None:
        image = samples.wide
        path = route_path(served, route)
        pixels = (await predict(served.client, path, served.alice, image, **PARAMS))["images"][0]["results"]
        body = await predict(served.client, path, served.alice, image, normalize="true", **PARAMS)
        fractions = body["images"][0]["results"]
        assert len(fractions) == len(pixels) > 0
        for normalized, absolute in zip(fractions, pixels, strict=True):
            assert all(0.0 <= value <= 1.0 for value in normalized["box"].values())
            for key, value in absolute["box"].items():
                size = 192 if key.startswith("x") else 128
                assert normalized["box"][key] == pytest.approx(value / size, abs=1e-4)

    async def test_decimals_round_every_number(self, served: Served, samples: Samples) -> None:
        path = served.client_path
        full = (await predict(served.client, path, served.alice, samples.square, **PARAMS))["images"][0]["results"]
        body = await predict(served.client, path, served.alice, samples.square, decimals=2, **PARAMS)
        rounded = body["images"][0]["results"]
        assert len(rounded) == len(full) > 0
        for short, long in zip(rounded, full, strict=True):
            pairs = [(short["confidence"], long["confidence"])]
            pairs += [(short["box"][key], value) for key, value in long["box"].items()]
            for value, exact in pairs:
                assert round(value, 2) == value
                assert value == pytest.approx(exact, abs=0.005 + 1e-9)


class TestPredictParameters:
    """Ranges are checked before the model is needed: a model without weights answers them with 422, not 409."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("imgsz", "31"),
            ("imgsz", "1281"),
            ("imgsz", "abc"),
            ("imgsz", "12.5"),
            ("conf", "0.0"),
            ("conf", "1.5"),
            ("iou", "0.96"),
            ("iou", "-0.1"),
            ("vid_stride", "0"),
            ("normalize", "maybe"),
            ("decimals", "11"),
        ],
    )
    @pytest.mark.parametrize("route", ROUTES)
    async def test_out_of_range_is_refused(
        self,
        stack: Stack,
        small_image: Path,
        route: str,
        name: str,
        value: str,
    ) -> None:
        path, _ = four_routes(stack.empty.id, stack.empty.ref)[route]
        form = image_form(small_image, **{name: value})
        body = assert_error(await stack.client.post(path, headers=stack.alice.headers, **form), 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == name

    async def test_boundaries_are_accepted(self, stack: Stack) -> None:
        """The edges of every range pass validation: the request gets as far as the missing weights."""
        path, _ = four_routes(stack.empty.id, stack.empty.ref)["seed"]
        for params in ({"imgsz": 32, "conf": 0.01, "iou": 0.0}, {"imgsz": 1280, "conf": 1.0, "iou": 0.95}):
            response = await stack.client.post(path, headers=stack.alice.headers, data={**params, "vid_stride": 1})
            assert_error(response, 409, "CONFLICT")

    async def test_json_body_is_refused(self, stack: Stack) -> None:
        path = f"/api/models/{stack.empty.id}/predict"
        response = await stack.client.post(path, headers=stack.alice.headers, json={"conf": 0.5})
        assert_error(response, 422, "VALIDATION_ERROR")


class TestPredictInputs:
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize("route", ROUTES)
    async def test_missing_file_and_source_is_refused(self, served: Served, route: str) -> None:
        response = await served.client.post(route_path(served, route), headers=served.alice.headers, data=PARAMS)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert "source" in body["error"]["message"]

    @pytest.mark.parametrize(
        ("filename", "content"),
        [
            pytest.param("garbage.jpg", b"this is not an image at all" * 20, id="corrupt"),
            pytest.param("empty.jpg", b"", id="empty"),
            pytest.param("bomb.png", png_claiming(30_000, 30_000), id="decompression-bomb"),
        ],
    )
    async def test_undecodable_upload_is_refused(self, served: Served, filename: str, content: bytes) -> None:
        files = {"file": (filename, content, "image/jpeg")}
        response = await served.client.post(served.seed_path, headers=served.alice.headers, files=files, data=PARAMS)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert [item["field"] for item in body["error"]["details"]] == ["file"]

    async def test_truncated_jpeg_is_refused(self, served: Served, samples: Samples) -> None:
        data = samples.square.read_bytes()
        files = {"file": ("cut.jpg", data[: len(data) // 2], "image/jpeg")}
        response = await served.client.post(served.client_path, headers=served.alice.headers, files=files, data=PARAMS)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_bomb_names_the_pixel_limit(self, served: Served) -> None:
        files = {"file": ("bomb.png", png_claiming(30_000, 30_000), "image/png")}
        response = await served.client.post(served.client_path, headers=served.alice.headers, files=files)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert "pixels" in body["error"]["message"]

    async def test_image_over_the_size_limit_is_413(self, served: Served, samples: Samples, small_image: Path) -> None:
        limit = len(samples.square.read_bytes()) - 1
        assert small_image.stat().st_size <= limit
        async with serve(served, inference={"max_image_bytes": limit}) as http:
            response = await http.post(served.seed_path, headers=served.alice.headers, **image_form(samples.square))
            assert_error(response, 413, "PAYLOAD_TOO_LARGE")
            # An image within the limit is predicted.
            body = await predict(http, served.seed_path, served.alice, small_image)
            assert body["images"][0]["shape"] == [16, 24]

    async def test_png_is_read_like_jpeg(
        self, served: Served, reference_model: Any, samples: Samples, tmp_path: Path
    ) -> None:
        image = tmp_path / "shapes.png"
        pixels = cv2.imread(str(samples.square))
        assert pixels is not None
        assert cv2.imwrite(str(image), pixels)
        body = await predict(served.client, served.client_path, served.alice, image, **PARAMS)
        assert_same_results(body["images"][0]["results"], reference(reference_model, image, **PARAMS), conf=CONF)


@dataclass
class ImageServer:
    """A real HTTP server on loopback serving one image at ``/shapes.jpg``, recording what it was asked."""

    image: bytes
    hits: list[str] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/shapes.jpg") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def image_server(samples: Samples) -> Iterator[ImageServer]:
    state = ImageServer(image=samples.square.read_bytes())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            found = self.path == "/shapes.jpg"
            body = state.image if found else b"not found"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "image/jpeg" if found else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class TestPredictSource:
    pytestmark = pytest.mark.slow

    @pytest.mark.parametrize(
        "source",
        [
            pytest.param("loopback", id="loopback"),
            pytest.param("http://169.254.169.254/latest/meta-data/", id="link-local-metadata"),
            pytest.param("http://[::1]:9/shapes.jpg", id="ipv6-loopback"),
            pytest.param("http://10.0.0.1/shapes.jpg", id="private"),
            pytest.param("file:///etc/passwd", id="file"),
            pytest.param("ftp://example.com/shapes.jpg", id="ftp"),
        ],
    )
    async def test_unsafe_source_is_refused(self, served: Served, image_server: ImageServer, source: str) -> None:
        url = image_server.url() if source == "loopback" else source
        data = {"source": url, **PARAMS}
        response = await served.client.post(served.client_path, headers=served.alice.headers, data=data)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert [item["field"] for item in body["error"]["details"]] == ["source"]
        assert image_server.hits == []

    async def test_operator_may_allow_private_sources(
        self, served: Served, image_server: ImageServer, reference_model: Any, samples: Samples
    ) -> None:
        async with serve(served, inference={"allow_private_sources": True}) as http:
            data = {"source": image_server.url(), **PARAMS}
            for path in (served.seed_path, served.client_path):
                body = ok(await http.post(path, headers=served.alice.headers, data=data))
                assert body["metadata"]["imageCount"] == 1
                assert body["images"][0]["shape"] == [128, 128]
                expected = reference(reference_model, samples.square, **PARAMS)
                assert_same_results(body["images"][0]["results"], expected, conf=CONF)
        assert image_server.hits == ["/shapes.jpg", "/shapes.jpg"]

    async def test_source_over_the_size_limit_is_413(
        self, served: Served, image_server: ImageServer, samples: Samples
    ) -> None:
        limit = len(samples.square.read_bytes()) - 1
        async with serve(served, inference={"allow_private_sources": True, "source_max_bytes": limit}) as http:
            data = {"source": image_server.url()}
            response = await http.post(served.client_path, headers=served.alice.headers, data=data)
        body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert [item["field"] for item in body["error"]["details"]] == ["source"]

    async def test_source_that_fails_is_an_error_not_a_crash(self, served: Served, image_server: ImageServer) -> None:
        async with serve(served, inference={"allow_private_sources": True}) as http:
            data = {"source": image_server.url("/missing.jpg")}
            response = await http.post(served.client_path, headers=served.alice.headers, data=data)
        assert_error(response, 422, "VALIDATION_ERROR")
        assert image_server.hits == ["/missing.jpg"]


class TestPredictAccess:
    @pytest.mark.parametrize("route", ["seed", "client", "hub", "hub-legacy"])
    async def test_other_accounts_private_model_is_404(self, stack: Stack, small_image: Path, route: str) -> None:
        path, extra = four_routes(stack.empty.id, stack.empty.ref)[route]
        form = image_form(small_image, **extra)
        assert_error(await stack.client.post(path, headers=stack.bob.headers, **form), 404, "NOT_FOUND")
        # The owner gets as far as the missing weights: the 404 is about who asks.
        assert_error(await stack.client.post(path, headers=stack.alice.headers, **form), 409, "CONFLICT")

    @pytest.mark.parametrize("route", ["seed", "client", "hub", "hub-legacy"])
    async def test_missing_key_is_401(self, stack: Stack, small_image: Path, route: str) -> None:
        path, extra = four_routes(stack.empty.id, stack.empty.ref)[route]
        assert_error(await stack.client.post(path, **image_form(small_image, **extra)), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize("route", ["seed", "client", "hub", "hub-legacy"])
    async def test_key_without_inference_scope_is_403(
        self,
        stack: Stack,
        small_image: Path,
        route: str,
    ) -> None:
        key = await add_key(stack.database, stack.alice, scopes=["models", "datasets"])
        path, extra = four_routes(stack.empty.id, stack.empty.ref)[route]
        response = await stack.client.post(path, headers={"x-api-key": key}, **image_form(small_image, **extra))
        body = assert_error(response, 403, "FORBIDDEN")
        assert "inference" in body["error"]["message"]

    async def test_model_without_weights_is_409(self, stack: Stack, small_image: Path) -> None:
        for path in (f"/api/models/{stack.empty.id}/predict", f"/api/models/{stack.empty.ref}/predict"):
            response = await stack.client.post(path, headers=stack.alice.headers, **image_form(small_image))
            body = assert_error(response, 409, "CONFLICT")
            assert "weights" in body["error"]["message"]

    @pytest.mark.slow
    async def test_failed_conversion_is_409_with_its_error(
        self, client: httpx.AsyncClient, alice: User, small_image: Path
    ) -> None:
        project_id = await create_project(client, alice, "broken")
        model = await uploaded_model(client, alice, project_id, data=b"\x00garbage" * 100, filename="x.pt")
        # The route waits for the conversion that the upload queued, then reports how it ended.
        response = await client.post(
            f"/api/models/{model['id']}/predict", headers=alice.headers, **image_form(small_image)
        )
        body = assert_error(response, 409, "CONFLICT")
        assert "not a PyTorch checkpoint" in body["error"]["message"]

    @pytest.mark.slow
    async def test_public_model_of_another_account_can_be_predicted(self, served: Served, samples: Samples) -> None:
        """Another account's model is readable when it and its project are public (a model names its project)."""
        alice, bob, http = served.alice, served.bob, served.client
        model_path, project_path = f"/api/models/{served.ref}", f"/api/projects/{alice.username}/{served.project}"
        try:
            ok(await http.patch(model_path, headers=alice.headers, json={"visibility": "public"}))
            response = await http.post(served.client_path, headers=bob.headers, **image_form(samples.square))
            assert_error(response, 404, "NOT_FOUND")
            ok(await http.patch(project_path, headers=alice.headers, json={"visibility": "public"}))
            for path in (served.seed_path, served.client_path):
                body = await predict(http, path, bob, samples.square, **PARAMS)
                assert body["metadata"]["model"] == served.model_id
                assert body["images"][0]["results"]
        finally:
            ok(await http.patch(project_path, headers=alice.headers, json={"visibility": "private"}))
            ok(await http.patch(model_path, headers=alice.headers, json={"visibility": "private"}))
        response = await http.post(served.seed_path, headers=bob.headers, **image_form(samples.square))
        assert_error(response, 404, "NOT_FOUND")
