"""The ``yolostack`` console script, run as the operator runs it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from tests.fixtures.database import BACKENDS, dispose_database_url, new_database_url
from tests.fixtures.server import KEY_LINE, YOLOSTACK, LiveServer, launch_server, run_cli, yolostack_env
from yolostack.core import db

KEY = re.compile(r"ul_[0-9a-f]{40}")
KEY_LIST_LINE = re.compile(
    r"^(?P<id>key_\S+)  (?P<prefix>\S+)…  (?P<name>.+?)  scopes=(?P<scopes>\S+)"
    r"  expires=(?P<expires>\S+)  last_used=(?P<last_used>\S+)$"
)


@dataclass(frozen=True)
class Workspace:
    """An operator's installation: the environment every command runs with, and dave, made by the CLI."""

    env: dict[str, str]
    dave_created: subprocess.CompletedProcess[str]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, stdin=stdin)


def printed_key(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    keys = KEY.findall(result.stdout)
    assert len(keys) == 1, result.stdout
    key: str = keys[0]
    return key


def key_lines(result: subprocess.CompletedProcess[str]) -> list[re.Match[str]]:
    assert result.returncode == 0, result.stderr
    matches = [KEY_LIST_LINE.match(line) for line in result.stdout.splitlines()]
    assert all(matches), result.stdout
    return [match for match in matches if match]


def listed(result: subprocess.CompletedProcess[str], key: str) -> re.Match[str]:
    """The one ``keys list`` line whose prefix starts ``key``."""
    (line,) = [line for line in key_lines(result) if key.startswith(line["prefix"])]
    return line


@pytest.fixture(scope="module", params=BACKENDS)
async def workspace(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Workspace]:
    """One installation per backend for this module (each command is a whole process start)."""
    backend: str = request.param
    directory = tmp_path_factory.mktemp(f"cli-{backend}")
    env = {"YOLOSTACK_DATA_DIR": str(directory / "data")}
    url = None
    if backend == "postgres":
        url = await new_database_url(backend, directory)
        env["YOLOSTACK_DATABASE_URL"] = url
    # What `yolostack serve` does first (the admin commands refuse a database that does not exist yet).
    (directory / "data").mkdir()
    await asyncio.to_thread(db.upgrade, url or f"sqlite+aiosqlite:///{directory / 'data' / 'yolostack.db'}")
    created = run_cli("users", "create", "dave", "--plan", "pro", env=env)
    yield Workspace(env=env, dave_created=created)
    if url is not None:
        await dispose_database_url(backend, url)


class TestUsersCreate:
    def test_prints_the_first_key(self, workspace: Workspace) -> None:
        result = workspace.dave_created
        printed_key(result)
        assert "Created dave" in result.stdout
        assert "plan pro" in result.stdout

    def test_invalid_username_exits_1(self, workspace: Workspace) -> None:
        result = workspace.run("users", "create", "Bad_Name")
        assert result.returncode == 1
        assert result.stderr.startswith("error: username must be lowercase")
        assert not KEY.search(result.stdout + result.stderr)

    def test_taken_username_exits_1(self, workspace: Workspace) -> None:
        result = workspace.run("users", "create", "dave")
        assert result.returncode == 1
        assert "error: username 'dave' is taken" in result.stderr


class TestWebSignIn:
    def test_set_password_reads_stdin_and_refuses_a_short_one(self, workspace: Workspace) -> None:
        short = workspace.run("users", "set-password", "dave", stdin="short\n")
        assert short.returncode == 1
        assert "8 to 1024 characters" in short.stderr
        result = workspace.run("users", "set-password", "dave", stdin="a long enough password\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Password set for dave"
        unknown = workspace.run("users", "set-password", "nobody", stdin="a long enough password\n")
        assert unknown.returncode == 1
        assert "not found" in unknown.stderr

    def test_sign_in_link_prints_a_one_time_link(self, workspace: Workspace) -> None:
        result = workspace.run("users", "sign-in-link", "dave")
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(
            r"http://127\.0\.0\.1:\d+/login/link/[\w-]{43}  \(once, within 24 h\)", result.stdout.strip()
        )


class TestUsersList:
    def test_shows_each_account(self, workspace: Workspace) -> None:
        result = workspace.run("users", "list")
        assert result.returncode == 0, result.stderr
        (dave,) = [line.split() for line in result.stdout.splitlines() if " dave " in line]
        assert dave[0].startswith("user_")
        assert dave[1:] == ["dave", "pro", "user"]


class TestKeysCreate:
    def test_prints_a_new_key(self, workspace: Workspace) -> None:
        args = ("keys", "create", "--user", "dave", "--name", "ci", "--scope", "projects", "--expires-in-days", "7")
        created = workspace.run(*args)
        key = printed_key(created)
        line = listed(workspace.run("keys", "list", "--user", "dave"), key)
        assert f"Created {line['id']} (ci) for dave" in created.stdout
        assert line["name"] == "ci"
        assert line["scopes"] == "projects"
        expires = datetime.fromisoformat(line["expires"].replace("Z", "+00:00"))
        assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)

    def test_unknown_user_exits_1(self, workspace: Workspace) -> None:
        result = workspace.run("keys", "create", "--user", "nobody", "--name", "ci")
        assert result.returncode == 1
        assert "error: user 'nobody' not found" in result.stderr
        assert not KEY.search(result.stdout)


class TestKeysList:
    def test_shows_prefixes_never_whole_keys(self, workspace: Workspace) -> None:
        first = printed_key(workspace.dave_created)
        result = workspace.run("keys", "list", "--user", "dave")
        line = listed(result, first)
        assert line["name"] == "first key"
        assert line["scopes"] == "all"
        assert line["expires"] == "never"
        assert len(line["prefix"]) < len(first)
        assert not KEY.search(result.stdout)

    def test_unknown_user_exits_1(self, workspace: Workspace) -> None:
        result = workspace.run("keys", "list", "--user", "nobody")
        assert result.returncode == 1
        assert "error: user 'nobody' not found" in result.stderr


class TestKeysRevoke:
    def test_revoked_key_leaves_the_list(self, workspace: Workspace) -> None:
        created = workspace.run("keys", "create", "--user", "dave", "--name", "short-lived")
        printed_key(created)
        found = re.search(r"^Created (key_\S+) \(short-lived\) for dave$", created.stdout, re.MULTILINE)
        assert found, created.stdout
        key_id = found.group(1)
        result = workspace.run("keys", "revoke", key_id)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"Revoked {key_id} (short-lived)"
        remaining = key_lines(workspace.run("keys", "list", "--user", "dave"))
        assert key_id not in {line["id"] for line in remaining}
        assert remaining

    def test_unknown_key_exits_1(self, workspace: Workspace) -> None:
        result = workspace.run("keys", "revoke", "key_doesnotexist")
        assert result.returncode == 1
        assert "error: no active key 'key_doesnotexist'" in result.stderr


@pytest.fixture(scope="class")
def two_starts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """``yolostack serve`` on a fresh data dir, then a second ``serve`` on the same one; both stay up."""
    env = {"YOLOSTACK_DATA_DIR": str(tmp_path_factory.mktemp("serve") / "data")}
    servers: list[LiveServer] = []
    try:
        servers.append(launch_server(env))
        servers[0].wait_for_banner()
        servers.append(launch_server(env))
        for server in servers:
            server.wait_until_healthy()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def summary(server: LiveServer, key: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/account/summary", headers={"x-api-key": key}, timeout=10)


class TestServe:
    def test_first_start_prints_the_url_and_an_admin_key(self, two_starts: tuple[LiveServer, LiveServer]) -> None:
        first, _ = two_starts
        assert f"Serving on {first.base_url}" in first.output
        assert len(first.keys) == 1, first.output
        assert first.key is not None
        assert KEY.fullmatch(first.key)

    def test_first_start_prints_a_sign_in_link_that_works_once(self, two_starts: tuple[LiveServer, LiveServer]) -> None:
        first, second = two_starts
        links = re.findall(rf"{re.escape(first.base_url)}/login/link/[\w-]+", first.output)
        assert len(links) == 1, first.output
        assert "/login/link/" not in second.output
        with httpx.Client(timeout=10) as browser:
            page = browser.get(links[0])
            assert page.status_code == 200
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            signed_in = browser.post(links[0], data={"csrf_token": csrf.group(1)}, follow_redirects=True)
            assert signed_in.status_code == 200
            assert "Welcome, Administrator" in signed_in.text
            assert browser.post(links[0], data={"csrf_token": csrf.group(1)}).status_code == 401

    def test_admin_key_works(self, two_starts: tuple[LiveServer, LiveServer]) -> None:
        first, _ = two_starts
        assert first.key is not None
        response = summary(first, first.key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["username"] == "admin"
        assert body["plan"] == "enterprise"

    def test_second_start_prints_no_key(self, two_starts: tuple[LiveServer, LiveServer]) -> None:
        first, second = two_starts
        assert f"Serving on {second.base_url}" in second.output
        assert not KEY_LINE.search(second.output), second.output
        assert first.key is not None
        response = summary(second, first.key)
        assert response.status_code == 200, response.text


@pytest.fixture(params=BACKENDS)
async def fresh_install(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    backend: str = request.param
    directory = tmp_path_factory.mktemp(f"race-{backend}")
    env = {"YOLOSTACK_DATA_DIR": str(directory / "data")}
    url = None
    if backend == "postgres":
        url = await new_database_url(backend, directory)
        env["YOLOSTACK_DATABASE_URL"] = url
    yield env
    if url is not None:
        await dispose_database_url(backend, url)


class TestSimultaneousFirstStarts:
    def test_both_come_up_and_exactly_one_admin_key_is_printed(self, fresh_install: dict[str, str]) -> None:
        # Launched together on an empty database: migrations and the admin bootstrap race.
        servers = [launch_server(fresh_install), launch_server(fresh_install)]
        try:
            for server in servers:
                server.wait_until_healthy()
            keys = [key for server in servers for key in server.keys]
            assert len(keys) == 1, "\n".join(server.output for server in servers)
            for server in servers:
                assert summary(server, keys[0]).status_code == 200
        finally:
            for server in servers:
                server.stop()


class TestBadSettings:
    def test_one_line_error_instead_of_a_traceback(self, tmp_path: object) -> None:
        result = run_cli("users", "list", env={"YOLOSTACK_PORT": "not-a-port", "YOLOSTACK_DATA_DIR": str(tmp_path)})
        assert result.returncode == 2
        assert "error: YOLOSTACK_PORT:" in result.stderr
        assert "Traceback" not in result.stderr

    def test_many_workers_without_redis_is_refused(self, tmp_path: object) -> None:
        result = run_cli("serve", "--workers", "2", env={"YOLOSTACK_DATA_DIR": str(tmp_path)}, timeout=30)
        assert result.returncode == 2
        assert "YOLOSTACK_REDIS_URL" in result.stderr


class TestVersion:
    def test_prints_yolostack_and_ultralytics(self) -> None:
        result = run_cli("--version", env={})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"yolostack {metadata.version('yolostack')}",
            f"ultralytics {metadata.version('ultralytics')}",
        ]


class TestDataDir:
    def test_admin_commands_refuse_a_database_that_does_not_exist(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere"
        for args in (("users", "list"), ("keys", "list", "--user", "dave"), ("users", "create", "eve")):
            result = run_cli(*args, env={"YOLOSTACK_DATA_DIR": str(missing)})
            assert result.returncode == 2, result.stdout + result.stderr
            assert f"error: no yolostack database at {missing.resolve() / 'yolostack.db'}" in result.stderr
            assert "yolostack serve" in result.stderr
            assert "--data-dir" in result.stderr
            assert not missing.exists()

    def test_from_another_directory_nothing_is_created_there(self, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        result = subprocess.run(
            [str(YOLOSTACK), "users", "list"],
            cwd=elsewhere,
            env=yolostack_env({}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "no yolostack database" in result.stderr
        assert list(elsewhere.iterdir()) == []

    def test_data_dir_option_names_the_servers_database(self, workspace: Workspace) -> None:
        env = {key: value for key, value in workspace.env.items() if key != "YOLOSTACK_DATA_DIR"}
        result = run_cli("users", "list", "--data-dir", workspace.env["YOLOSTACK_DATA_DIR"], env=env)
        assert result.returncode == 0, result.stderr
        assert " dave " in result.stdout

    async def test_an_empty_postgresql_database_is_refused(self, tmp_path: Path) -> None:
        if "postgres" not in BACKENDS:
            pytest.skip("PostgreSQL is not configured")
        url = await new_database_url("postgres", tmp_path)
        try:
            result = run_cli("users", "list", env={"YOLOSTACK_DATA_DIR": str(tmp_path), "YOLOSTACK_DATABASE_URL": url})
            assert result.returncode == 2, result.stdout + result.stderr
            assert "is not a yolostack database (it has no tables yet)" in result.stderr
            assert "***" in result.stderr or "@" not in result.stderr
        finally:
            await dispose_database_url("postgres", url)
