"""Child processes die with their parent, are reaped when they end, and their folders are swept once their
owner is gone (``yolostack.core.processes`` and the engine's primitives under it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from yolostack.core import processes
from yolostack.storage.backends import LocalStore
from yolostack.worker.executors import LOG_KEPT_SECONDS, LocalExecutor
from yolostack_engine.processes import private_environment

# A parent that starts a grandchild the way the server starts its children, prints its pid, and waits.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from yolostack_engine.processes import child_preexec

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=child_preexec())
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def gone_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def running(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class TestOwners:
    def test_this_process_is_not_gone(self) -> None:
        tag = processes.owner_tag()
        assert tag.split("-")[-2] == str(os.getpid())
        assert not processes.owner_is_gone(tag)

    def test_an_ended_process_is_gone(self) -> None:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
        tag = processes.owner_tag(process.pid)
        assert not processes.owner_is_gone(tag)
        process.wait()
        assert processes.owner_is_gone(tag)

    def test_a_reused_pid_is_gone(self) -> None:
        host, pid, started = processes.owner_tag().rsplit("-", 2)
        assert processes.owner_is_gone(f"{host}-{pid}-{int(started) - 100}")

    def test_other_hosts_and_other_names_are_never_judged(self) -> None:
        assert not processes.owner_is_gone(f"elsewhere.example-{gone_pid()}-1")
        assert not processes.owner_is_gone("not-an-owner")
        assert not processes.owner_is_gone("abcdef0123")


class TestSweep:
    def test_removes_what_gone_owners_left_and_nothing_else(self, tmp_path: Path) -> None:
        host = processes.owner_tag().rsplit("-", 2)[0]
        dead = tmp_path / f"{host}-{gone_pid()}-1"
        (dead / "work").mkdir(parents=True)
        (dead / "work" / "model.pt").write_bytes(b"x")
        mine = tmp_path / processes.owner_tag()
        mine.mkdir()
        foreign = tmp_path / "elsewhere-1-1"
        foreign.mkdir()
        unnamed = tmp_path / "0123abcd"
        unnamed.write_bytes(b"x")
        assert processes.sweep(tmp_path) == [dead]
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted([mine.name, foreign.name, unnamed.name])

    def test_unnamed_entries_go_once_stale(self, tmp_path: Path) -> None:
        old, fresh = tmp_path / "0123abcd", tmp_path / "4567ef01"
        old.write_bytes(b"x")
        fresh.write_bytes(b"x")
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        assert processes.sweep(tmp_path, stale_after=3600) == [old]
        assert fresh.exists()

    def test_a_missing_root_is_nothing_to_sweep(self, tmp_path: Path) -> None:
        assert processes.sweep(tmp_path / "nothing") == []

    def test_claimed_temp_dir_is_this_processes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
        monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", "/tmp"))
        host = processes.owner_tag().rsplit("-", 2)[0]
        (tmp_path / f"{host}-{gone_pid()}-1").mkdir()
        own = processes.claim_temp_dir(tmp_path)
        assert [path.name for path in tmp_path.iterdir()] == [processes.owner_tag()]
        assert tempfile.gettempdir() == str(own) == os.environ["TMPDIR"]


class TestChildren:
    def test_a_child_dies_with_its_parent(self) -> None:
        parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert running(child)
            assert os.getpgid(child) == child  # its own process group
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=10)
            assert wait_gone(child)
        finally:
            parent.kill()
            parent.wait()

    async def test_terminate_kills_the_group_and_reaps(self, tmp_path: Path) -> None:
        script = (
            "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); print('up', flush=True); time.sleep(60)"
        )
        child = await processes.spawn(
            [sys.executable, "-c", script], cwd=tmp_path, env=os.environ, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        assert await child.stdout.readline() == b"up\n"
        grandchildren = [process.pid for process in psutil.Process(child.pid).children()]
        assert grandchildren
        assert await processes.terminate(child, grace=5) == -signal.SIGTERM
        assert not running(child.pid)
        assert all(wait_gone(pid) for pid in grandchildren)

    async def test_a_child_that_ends_on_its_own_is_reaped(self, tmp_path: Path) -> None:
        child = await processes.spawn([sys.executable, "-c", "pass"], cwd=tmp_path, env=os.environ)
        await asyncio.wait_for(child.wait(), 30)
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(child.pid).status()


class TestPrivateEnvironment:
    def test_points_every_folder_inside(self, tmp_path: Path) -> None:
        env = private_environment(tmp_path)
        for name in ("HOME", "TMPDIR", "YOLO_CONFIG_DIR", "XDG_CACHE_HOME", "MPLCONFIGDIR", "TORCH_HOME"):
            assert Path(env[name]).is_relative_to(tmp_path), name
        settings = json.loads((tmp_path / "config" / "Ultralytics" / "settings.json").read_text())
        assert settings["datasets_dir"] == str(tmp_path / "datasets")
        assert settings["runs_dir"] == str(tmp_path / "runs")
        assert settings["weights_dir"] == str(tmp_path / "weights")

    def test_ultralytics_takes_its_folders_from_it_wherever_it_runs(self, tmp_path: Path) -> None:
        # Run from inside this checkout: left alone, ultralytics would put datasets beside the checkout.
        work = tmp_path / "work"
        env = {**os.environ, **private_environment(work)}
        code = "from ultralytics.utils import DATASETS_DIR, SETTINGS; print(DATASETS_DIR, SETTINGS['runs_dir'])"
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert result.stdout.split() == [str(work / "datasets"), str(work / "runs")]


class TestLocalStorePartials:
    async def test_a_gone_writers_partial_files_are_swept(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "objects")

        async def body() -> object:
            yield b"x"
            raise ConnectionError("client went away")

        with pytest.raises(ConnectionError):
            await store.write("a/b.bin", body())  # type: ignore[arg-type]
        host = processes.owner_tag().rsplit("-", 2)[0]
        dead = tmp_path / "objects" / ".partial" / f"{host}-{gone_pid()}-1"
        dead.mkdir(parents=True)
        (dead / "0123abcd").write_bytes(b"half an upload")
        assert store.sweep_partials() == [dead]
        assert [path for path in (tmp_path / "objects" / ".partial").rglob("*") if path.is_file()] == []


class TestLocalExecutor:
    async def test_a_runner_is_reaped_and_its_folder_removed_without_a_poll(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "executable", _fake_python(tmp_path))
        executor = LocalExecutor(tmp_path / "jobs")
        handle = await executor.launch("job_x", 1, {})
        pid = int(handle.split(":")[1])
        work = tmp_path / "jobs" / "job_x-1"
        deadline = time.monotonic() + 30
        while work.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not work.exists()
        assert (tmp_path / "jobs" / "job_x-1.log").read_text().strip() == "runner ran"
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(pid).status()
        state = await executor.poll(handle)
        assert state is not None
        assert (state.running, state.exit_code) == (False, 0)
        assert await executor.poll(handle) is None

    async def test_folders_of_a_gone_servers_runners_are_cleared(self, tmp_path: Path) -> None:
        host = processes.owner_tag().rsplit("-", 2)[0]
        old = tmp_path / "jobs" / "job_old-1"
        (old / "runs").mkdir(parents=True)
        (old / "runner.log").write_text("old")
        (old / ".owner").write_text(f"{host}-{gone_pid()}-1")
        live = tmp_path / "jobs" / "job_live-1"
        live.mkdir()
        (live / ".owner").write_text(processes.owner_tag())
        LocalExecutor(tmp_path / "jobs")
        assert not old.exists()
        assert (tmp_path / "jobs" / "job_old-1.log").read_text() == "old"
        assert live.exists()

    async def test_ended_runs_logs_are_kept_for_a_while_then_removed(self, tmp_path: Path) -> None:
        jobs = tmp_path / "jobs"
        jobs.mkdir()
        expired, recent = jobs / "job_a-1.log", jobs / "job_b-1.log"
        for log in (expired, recent):
            log.write_text("ended")
        long_ago = time.time() - LOG_KEPT_SECONDS - 60
        os.utime(expired, (long_ago, long_ago))
        LocalExecutor(jobs)
        assert sorted(path.name for path in jobs.iterdir()) == ["job_b-1.log"]


def _fake_python(tmp_path: Path) -> str:
    """A stand-in interpreter that ignores ``-m yolostack.worker.runner`` and exits at once."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho runner ran\n")
    fake.chmod(0o755)
    return str(fake)
