"""Dataset ingest and NDJSON export throughput, against the machine's raw unzip + decode in the same run.

    .venv/bin/python bench/ingest.py [--images 1000] [--size 320]

Builds a YOLO detect zip of synthetic images, then measures
- baseline: ``unzip`` (or zipfile when unzip is missing) of the archive plus a full Pillow decode of
  every image: the least work any ingest must do;
- yolostack: the real server app (in process, SQLite + local disk) taking the archive through the
  signed-URL upload, ``POST …/ingest`` until the dataset is ready, then the NDJSON export.
Prints images/s and the ratio to the baseline; no pass/fail threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.synthetic import make_yolo_detect, zip_dir

from yolostack.account.service import account as account_service
from yolostack.api_keys.service import api_key as api_key_service
from yolostack.app import create_app
from yolostack.config import Environment, Settings
from yolostack.core import db
from yolostack.tables import Plan


def baseline(archive: Path, work: Path) -> float:
    target = work / "baseline"
    target.mkdir()
    started = time.perf_counter()
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-q", str(archive), "-d", str(target)], check=True)
    else:
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(target)
    for path in target.rglob("*.jpg"):
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - started


async def through_yolostack(archive: Path, work: Path) -> tuple[float, float, int]:
    settings = Settings.model_validate({"environment": Environment.testing, "data_dir": work / "data"})
    await asyncio.to_thread(db.upgrade, settings.resolved_database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.database.sessionmaker() as session, session.begin():
            # Enterprise: the polling below must not run into the free plan's 60 requests a minute.
            account = await account_service.create(session, username="bench", plan=Plan.enterprise)
            _, key = await api_key_service.issue(session, account, name="bench")
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as http:
            created = (
                await http.post("/api/datasets", headers=headers, json={"dataset": "bench", "name": "bench"})
            ).json()
            data = archive.read_bytes()
            signed = (
                await http.post(
                    "/api/upload/signed-url",
                    headers=headers,
                    json={
                        "assetType": "datasets",
                        "assetId": created["id"],
                        "filename": archive.name,
                        "totalBytes": len(data),
                    },
                )
            ).json()
            await http.put(urlsplit(signed["uploadUrl"]).path, content=data)
            await http.post("/api/upload/complete", headers=headers, json={"sessionId": signed["sessionId"]})
            started = time.perf_counter()
            await http.post(
                "/api/datasets/bench/bench/ingest", headers=headers, json={"sessionId": signed["sessionId"]}
            )
            while True:
                dataset = (await http.get("/api/datasets/bench/bench", headers=headers)).json()["dataset"]
                if dataset["status"] != "processing":
                    break
                await asyncio.sleep(0.05)
            ingest_seconds = time.perf_counter() - started
            if dataset["status"] != "ready":
                raise SystemExit(f"ingest failed: {dataset['processingError']}")
            started = time.perf_counter()
            export = (await http.get("/api/datasets/bench/bench/export", headers=headers)).json()
            export_seconds = time.perf_counter() - started
            assert export["downloadUrl"].endswith(".ndjson")
            return ingest_seconds, export_seconds, int(dataset["imageCount"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=320, help="image side in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yolostack-bench-") as folder:
        work = Path(folder)
        archive = zip_dir(make_yolo_detect(work / "src", images=args.images, size=args.size), work / "bench.zip")
        megabytes = archive.stat().st_size / 1e6
        base = baseline(archive, work)
        ingest, export, count = asyncio.run(through_yolostack(archive, work))
    print(f"archive: {args.images} images of {args.size}x{args.size}, {megabytes:.1f} MB")
    print(f"baseline unzip + decode: {base:.2f} s  ({args.images / base:.0f} images/s)")
    print(
        f"yolostack ingest:        {ingest:.2f} s  ({count / ingest:.0f} images/s)  ratio to baseline {ingest / base:.2f}x"
    )
    print(f"yolostack NDJSON export: {export:.2f} s  ({count / export:.0f} images/s)")


if __name__ == "__main__":
    main()
