"""What a live ``yolostack serve`` leaves behind: its children die with it and are reaped when they end, a
killed server's temporary and partial files are swept by the next start, and jobs, conversions and replicas
write only under the data dir (never in the server's cwd, its HOME, the checkout or the checkout's parent).

SQLite only: these are process and file mechanics; the database work is covered on both backends elsewhere.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.fixtures.checkpoints import Checkpoints
from tests.fixtures.checkpoints import checkpoints as checkpoints
from tests.jobs.helpers import LiveStack, create_model, ok, upload_dataset, wait_for, wait_training
from yolostack.core.processes import owner_is_gone, owner_tag
from yolostack.models.tasks import LEASE as CONVERSION_LEASE

pytestmark = [pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[2]
ULTRALYTICS_FOLDERS = ("runs", "datasets", "weights")
LEFTOVER_SUFFIXES = (".part", ".partial", ".tmp")
ORPHAN_TIMEOUT = 10.0
# The conversion worker's poll interval and a loaded machine's start-up; less than the lease.
TAKEOVER_SLACK = 15.0
assert CONVERSION_LEASE.total_seconds() > TAKEOVER_SLACK, (
    "a takeover within the slack must not be the lease running out"
)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a zombie's parent has not reaped it: it runs nothing)."""
    try:
        status: str = process.status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def described(processes: list[psutil.Process]) -> list[str]:
    """Pid, status and command line of each, for a failure message."""
    found = []
    for process in processes:
        try:
            found.append(f"{process.pid} {process.status()} {' '.join(process.cmdline())[:200]}")
        except psutil.ZombieProcess:
            found.append(f"{process.pid} zombie")
        except psutil.NoSuchProcess:
            continue
    return found


def zombies(pid: int) -> list[str]:
    found = []
    for child in descendants(pid):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(f"{child.pid} {child.name()}")
        except psutil.NoSuchProcess:
            continue
    return found


def conversion_children(data: Path) -> list[psutil.Process]:
    """Conversion children working for the server of ``data`` (their command line names a file under it)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "yolostack_engine.convert" in cmdline and str(data.resolve()) in cmdline and running(process):
            found.append(process)
    return found


def leftovers(data: Path) -> list[str]:
    """Temporary and partial files under ``data`` that belong to no live process."""
    found = [str(path) for path in (data / "objects" / ".partial").rglob("*") if path.is_file()]
    temp = data / "tmp"
    if temp.exists():
        found += [str(path) for path in temp.iterdir() if owner_is_gone(path.name)]
    found += [
        str(path) for path in data.rglob("*") if path.name.endswith(LEFTOVER_SUFFIXES) and path.name != ".partial"
    ]
    return found


def kill_server(stack: LiveStack) -> list[psutil.Process]:
    """``kill -9`` the server; returns the children it had, for the caller to check they died with it."""
    children = descendants(stack.server.process.pid)
    stack.server.process.send_signal(signal.SIGKILL)
    stack.server.process.wait(timeout=10)
    return children


def assert_no_orphans(children: list[psutil.Process], data: Path) -> None:
    alive = wait_for(
        lambda: [child for child in children if running(child)] + conversion_children(data),
        lambda processes: not processes,
        ORPHAN_TIMEOUT,
        what="the killed server's children to die with it",
    )
    assert alive == []


def upload_checkpoint(http: httpx.Client, project_id: str, checkpoint: Path, name: str) -> dict[str, Any]:
    """The seed's multipart ``POST /api/models``: the conversion starts at once."""
    with checkpoint.open("rb") as handle:
        files = {"file": (checkpoint.name, handle, "application/octet-stream")}
        return dict(
            ok(http.post("/api/models", data={"projectId": project_id, "name": name}, files=files), 201)["data"]
        )


def serving_status(http: httpx.Client, model: dict[str, Any]) -> str:
    found = ok(http.get(f"/api/models/admin/{model['project']}/{model['slug']}"))["model"]
    return str(found["serving"]["status"])


class TestServerKilledDuringConversion:
    def test_the_child_dies_and_the_restart_takes_the_conversion_over(
        self, tmp_path: Path, checkpoints: Checkpoints
    ) -> None:
        stack = LiveStack(tmp_path, {"YOLOSTACK_JOBS__RUN_JOBS": "false"})
        try:
            project = ok(stack.http.post("/api/projects", json={"project": "conv", "name": "conv"}), 201)["id"]
            model = upload_checkpoint(stack.http, project, checkpoints.detect, "tiny")
            wait_for(lambda: conversion_children(stack.data), bool, 60, what="the conversion child")
            assert serving_status(stack.http, model) == "converting"
            children = kill_server(stack)
            assert_no_orphans(children, stack.data)
            assert leftovers(stack.data), "the killed conversion left its work folder (the test kills too late?)"

            stack.restart()
            assert leftovers(stack.data) == []
            # No conversion runs any more: the restarted server sees that the lease's holder is a process of
            # this host that is gone and takes the conversion over at its first rounds, well before the lease
            # (renewed every few seconds while the holder lived) would have run out.
            wait_for(
                lambda: (serving_status(stack.http, model), conversion_children(stack.data)),
                lambda state: state[0] in ("ready", "failed") or bool(state[1]),
                TAKEOVER_SLACK,
                what="the restarted server to take the conversion over",
            )
            status = wait_for(
                lambda: serving_status(stack.http, model),
                lambda value: value in ("ready", "failed"),
                120,
                what="the conversion to end",
            )
            assert status == "ready"
            assert leftovers(stack.data) == []
            assert zombies(stack.server.process.pid) == []
        finally:
            stack.server.stop()


class SlowBody:
    """A request body that trickles until told to stop (a client on a slow link)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while not self.stop.is_set():
            chunk = b"\0" * 65536
            self.sent += len(chunk)
            yield chunk
            time.sleep(0.05)


class TestServerKilledDuringUpload:
    def test_the_partial_file_is_swept_at_restart(self, tmp_path: Path) -> None:
        stack = LiveStack(tmp_path, {"YOLOSTACK_JOBS__RUN_JOBS": "false"})
        body = SlowBody()
        try:
            model = create_model(stack.http, "up", "slow")
            signed = ok(
                stack.http.post(
                    "/api/upload/signed-url",
                    json={"assetType": "models", "assetId": model["id"], "filename": "slow.pt"},
                )
            )
            errors: list[BaseException] = []

            def put() -> None:
                try:
                    httpx.put(signed["uploadUrl"], content=body, timeout=60)
                except httpx.HTTPError as error:
                    errors.append(error)

            sender = threading.Thread(target=put, daemon=True)
            sender.start()
            partial = stack.data / "objects" / ".partial"
            wait_for(lambda: [p for p in partial.rglob("*") if p.is_file()], bool, 30, what="the partial file")
            children = kill_server(stack)
            body.stop.set()
            sender.join(timeout=30)
            assert errors, "the upload cannot have succeeded: the server was killed"
            assert_no_orphans(children, stack.data)
            assert leftovers(stack.data), "the upload left its partial file"

            stack.restart()
            assert leftovers(stack.data) == []
            assert [path.name for path in (stack.data / "tmp").iterdir()] == [owner_tag(stack.server.process.pid)]
        finally:
            body.stop.set()
            stack.server.stop()


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


class Hygiene(LiveStack):
    """A live server whose cwd and HOME are empty folders of their own, so that writes there show.

    ultralytics takes the git checkout it is installed in (this one, through .venv) as its root: left alone,
    it puts downloaded datasets in the checkout's parent and runs and weights in the checkout, whatever the cwd.
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.cwd_dir, self.home = tmp, tmp / "cwd", tmp / "home"
        self.cwd_dir.mkdir()
        self.home.mkdir()
        self.real_checkout_before = self.ultralytics_folders(CHECKOUT)
        super().__init__(tmp, {"HOME": str(self.home)}, cwd=self.cwd_dir)

    @staticmethod
    def ultralytics_folders(checkout: Path) -> set[Path]:
        """The ultralytics folders in a checkout and in its parent (where ultralytics puts datasets)."""
        candidates = [folder / name for folder in (checkout, checkout.parent) for name in ULTRALYTICS_FOLDERS]
        return {path for path in candidates if path.exists()}

    def assert_clean(self) -> None:
        assert listing(self.cwd_dir) == []
        assert listing(self.home) == []
        assert sorted(path.name for path in self.tmp.iterdir()) == ["client", "cwd", "data", "home"]
        assert self.ultralytics_folders(CHECKOUT) == self.real_checkout_before
        assert zombies(self.server.process.pid) == []


@pytest.fixture(scope="module")
def hygiene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hygiene]:
    tmp = tmp_path_factory.mktemp("hygiene")
    stack = Hygiene(tmp)
    try:
        (tmp / "client").mkdir()
        upload_dataset(stack.http, tmp / "client", "shapes", images=8)
        yield stack
    finally:
        stack.server.stop()


@pytest.fixture(scope="module")
def trained(hygiene: Hygiene) -> dict[str, Any]:
    hygiene.start("clean", epochs=1, plots=False)
    return wait_training(hygiene.http, "admin", "demo", "clean", timeout=300)


class TestNothingOutsideTheDataDir:
    def test_a_training_run(self, hygiene: Hygiene, trained: dict[str, Any]) -> None:
        assert trained["status"] == "completed", trained
        work = hygiene.data / "jobs" / f"{trained['id']}-1"
        # The run is complete when the trainer says so; its runner then uploads the weights and exits.
        wait_for(
            lambda: (work.exists(), described(descendants(hygiene.server.process.pid))),
            lambda state: not state[0],
            60,
            what="the runner to exit and its work folder to go",
        )
        assert (work.parent / f"{work.name}.log").is_file()
        hygiene.assert_clean()

    def test_an_export(self, hygiene: Hygiene, trained: dict[str, Any]) -> None:
        path = "/api/models/admin/demo/clean/exports"
        created = ok(hygiene.http.post(path, json={"format": "onnx", "args": {"imgsz": 64}}), 201)
        export = wait_for(
            lambda: ok(hygiene.http.get(f"{path}/{created['id']}"))["export"],
            lambda export: export["status"] not in ("queued", "starting", "running"),
            300,
            what="the export to end",
        )
        assert export["status"] == "completed", export
        wait_for(lambda: zombies(hygiene.server.process.pid), lambda found: not found, 10, what="no zombie")
        hygiene.assert_clean()

    def test_a_deployment(self, hygiene: Hygiene, trained: dict[str, Any]) -> None:
        model = ok(hygiene.http.get("/api/models/admin/demo/clean"))["model"]
        wait_for(
            lambda: serving_status(hygiene.http, model),
            lambda status: status in ("ready", "failed"),
            180,
            what="the trained model's conversion",
        )
        body = {"project": "demo", "model": "clean", "deployment": "tidy", "name": "tidy", "region": "us-central1"}
        ok(hygiene.http.post("/api/deployments/admin", json=body), 201)
        status = wait_for(
            lambda: ok(hygiene.http.get("/api/deployments/admin/tidy"))["deployment"]["status"],
            lambda status: status in ("ready", "failed"),
            120,
            what="the deployment",
        )
        assert status == "ready"
        replicas = descendants(hygiene.server.process.pid)
        ok(hygiene.http.delete("/api/deployments/admin/tidy"))
        wait_for(
            lambda: [process.pid for process in replicas if running(process)],
            lambda alive: len(alive) < len(replicas),
            30,
            what="the replica to stop",
        )
        hygiene.assert_clean()
