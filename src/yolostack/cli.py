"""``yolostack serve | users | keys | watch``: run the server, manage accounts and keys, follow jobs."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.account.service import account as account_service
from yolostack.api_keys.repository import ApiKeyRepository
from yolostack.api_keys.service import api_key as api_key_service
from yolostack.auth.scopes import Scope
from yolostack.config import Settings, get_settings
from yolostack.core import db, processes
from yolostack.core.errors import AppError, Conflict
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.storage.backends import LocalStore, create_store
from yolostack.tables import Account, Plan
from yolostack.watch import TARGET_HELP
from yolostack.watch import watch as watch_job
from yolostack.web.service import web_auth

app = typer.Typer(help="yolostack: self-hosted Ultralytics Platform and HUB Inference API.", no_args_is_help=True)
users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="YOLOSTACK_DATA_DIR",
        show_envvar=True,
        help="The server's data directory (its database, unless YOLOSTACK_DATABASE_URL names one)",
    ),
]


def _version(value: bool) -> None:
    if not value:
        return
    try:
        ultralytics = metadata.version("ultralytics")
    except metadata.PackageNotFoundError:
        ultralytics = "not installed"
    typer.echo(f"yolostack {metadata.version('yolostack')}")
    typer.echo(f"ultralytics {ultralytics}")
    raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the versions and exit")
    ] = False,
) -> None:
    """yolostack: self-hosted Ultralytics Platform and HUB Inference API."""


def _settings(data_dir: Path | None = None) -> Settings:
    """The environment's settings, or a one-line error per bad variable instead of a traceback."""
    if data_dir is not None:
        os.environ["YOLOSTACK_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    try:
        return get_settings()
    except ValidationError as error:
        for problem in error.errors():
            field = "__".join(str(part) for part in problem["loc"]).upper()
            typer.echo(f"error: YOLOSTACK_{field}: {problem['msg']}" if field else f"error: {problem['msg']}", err=True)
        raise typer.Exit(2) from error


def _admin_settings(data_dir: Path | None) -> Settings:
    """Settings for ``users``/``keys``: the server's existing database, never a new empty one elsewhere."""
    settings = _settings(data_dir)
    problem = _missing_database(settings)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        typer.echo(
            "  Start the server once (`yolostack serve`) to create it, or point --data-dir (YOLOSTACK_DATA_DIR) "
            "or YOLOSTACK_DATABASE_URL at the server's.",
            err=True,
        )
        raise typer.Exit(2)
    return settings


def _missing_database(settings: Settings) -> str | None:
    """Why the settings name no yolostack database yet (None when they do)."""
    url = settings.resolved_database_url
    where = _redacted(url)
    if settings.is_sqlite:
        where = make_url(url).database or ""
        if not Path(where).is_file():
            return f"no yolostack database at {where}"
    try:
        migrated = asyncio.run(_has_table(url, "alembic_version"))
    except (OSError, OperationalError) as error:
        return f"cannot open the database {where}: {str(error).splitlines()[0]}"
    return None if migrated else f"{where} is not a yolostack database (it has no tables yet)"


async def _has_table(url: str, name: str) -> bool:
    database = db.Database(url)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).has_table(name))
    finally:
        await database.dispose()


def _run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, then run ``work`` in one committed transaction; an AppError becomes a clean exit 1."""
    db.upgrade(settings.resolved_database_url)

    async def main() -> T:
        database = db.Database(settings.resolved_database_url)
        try:
            async with database.sessionmaker() as session, session.begin():
                return await work(session)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except AppError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


async def _bootstrap_admin(session: AsyncSession, settings: Settings) -> tuple[str, str] | None:
    """On the very first start create the admin account; returns its first key and a one-time sign-in link's
    token (both shown once)."""
    username = settings.admin_username
    if await account_service.count(session) > 0:
        return None
    # Two processes starting at once on a fresh database race here; the loser's commit fails on the
    # unique username and it starts without printing a key (see serve()).
    try:
        admin = await account_service.create(
            session, username=username, name="Administrator", plan=Plan.enterprise, is_admin=True
        )
    except Conflict:
        return None
    _, plaintext = await api_key_service.issue(session, admin, name="first key (created on first start)")
    return plaintext, await web_auth.issue_link(session, settings.web, admin)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000)")] = None,
    public_url: Annotated[str | None, typer.Option(help="Origin clients use, if not http://host:port")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Server processes (more than 1 needs Redis)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Migrate the database, create the admin on first start, and serve the API."""
    given = {"host": host, "port": port, "public_url": public_url, "workers": workers, "data_dir": data_dir}
    overrides = {key: value for key, value in given.items() if value is not None}
    # Through the environment so that worker processes, which build their own settings, see them too.
    os.environ.update({f"YOLOSTACK_{key.upper()}": str(value) for key, value in overrides.items()})
    get_settings.cache_clear()
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = _claim_data_dir(settings)
    # uvicorn re-raises the SIGTERM it handled once it has shut down; as an exception it lets this clean up.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        _serve(settings)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _claim_data_dir(settings: Settings) -> Path:
    """Everything this server and its children write goes under the data dir: temp files (in a folder of
    this process's, after sweeping those a killed server left), ultralytics' settings; returns the temp dir."""
    data_dir = settings.data_dir.resolve()
    temp_dir = processes.claim_temp_dir(data_dir / "tmp")
    if "YOLO_CONFIG_DIR" not in os.environ:
        config = data_dir / "config"
        processes.write_ultralytics_settings(config, data_dir / "ultralytics")
        os.environ["YOLO_CONFIG_DIR"] = str(config)
    if not settings.storage_url:
        store = create_store(None, data_dir, endpoint_url=None, region=None)
        assert isinstance(store, LocalStore)
        store.sweep_partials()
    return temp_dir


def _serve(settings: Settings) -> None:
    """Migrate, create the first admin, print the banner and run uvicorn until it stops."""
    try:
        first = _run_in_session(settings, lambda session: _bootstrap_admin(session, settings))
    except IntegrityError:
        first = None
    typer.echo(f"yolostack {settings.environment} · database {_redacted(settings.resolved_database_url)}")
    if first is not None:
        first_key, link_token = first
        typer.echo(f"Created admin account '{settings.admin_username}'. Its API key (shown only this once):")
        typer.echo(f"  API key: {first_key}")
        typer.echo(f"  Sign in to the web app (once, within {settings.web.sign_in_link_ttl_hours:g} h):")
        typer.echo(f"  {settings.base_url}/login/link/{link_token}")
    typer.echo(f"Serving on {settings.base_url}  (API docs: {settings.base_url}/api/docs)")
    typer.echo(f"  export ULTRALYTICS_PLATFORM_URL={settings.base_url}")
    from yolostack.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if settings.workers > 1:
        # Each worker builds its own app from the environment; Redis keeps their rate limits shared.
        uvicorn.run(
            "yolostack.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            # uvicorn kills a worker that has not answered its health check within 5 s; importing the app
            # (engine, ultralytics) takes longer than that on a busy machine, so it was killed mid-start.
            timeout_worker_healthcheck=60,
        )
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def _redacted(url: str) -> str:
    """Hide the password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, location = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    plan: Annotated[Plan, typer.Option(help="Plan, which sets the rate limits")] = Plan.free,
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an administrator")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an account and print its first API key (shown once)."""

    async def work(session: AsyncSession) -> tuple[Account, str]:
        account = await account_service.create(session, username=username, name=name, plan=plan, is_admin=admin)
        _, plaintext = await api_key_service.issue(session, account, name="first key")
        return account, plaintext

    account, plaintext = _run_in_session(_admin_settings(data_dir), work)
    typer.echo(f"Created {account.username} ({account.id}, plan {account.plan})")
    typer.echo(f"API key (shown only this once): {plaintext}")


@users_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="The account whose web sign-in password to set")],
    data_dir: DataDir = None,
) -> None:
    """Set an account's password for the web app: asked twice on a terminal, else read from stdin's first line."""
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            typer.echo("error: the two passwords differ", err=True)
            raise typer.Exit(1)
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    async def work(session: AsyncSession) -> Account:
        return await web_auth.set_password(session, username, password)

    account = _run_in_session(_admin_settings(data_dir), work)
    typer.echo(f"Password set for {account.username}")


@users_app.command("sign-in-link")
def sign_in_link(
    username: Annotated[str, typer.Argument(help="The account the link signs in")],
    data_dir: DataDir = None,
) -> None:
    """Print a one-time link that signs the account in to the web app."""
    settings = _admin_settings(data_dir)

    async def work(session: AsyncSession) -> str:
        account = await account_service.get_by_username(session, username)
        return await web_auth.issue_link(session, settings.web, account)

    token = _run_in_session(settings, work)
    typer.echo(f"{settings.base_url}/login/link/{token}  (once, within {settings.web.sign_in_link_ttl_hours:g} h)")


@users_app.command("list")
def list_users(data_dir: DataDir = None) -> None:
    """List accounts."""
    accounts = _run_in_session(_admin_settings(data_dir), account_service.list_all)
    for account in accounts:
        role = "admin" if account.is_admin else "user"
        typer.echo(f"{account.id}  {account.username:<24} {account.plan:<10} {role}")


@keys_app.command("create")
def create_key(
    user: Annotated[str, typer.Option("--user", help="Username that owns the key")],
    name: Annotated[str, typer.Option(help="What the key is for")],
    scope: Annotated[list[Scope] | None, typer.Option(help="Repeat to grant several; none = full rights")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it (shown once)."""

    async def work(session: AsyncSession) -> tuple[str, str]:
        account = await account_service.get_by_username(session, user)
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        key, plaintext = await api_key_service.issue(
            session, account, name=name, scopes=[str(item) for item in scope or []], expires_at=expires_at
        )
        return key.id, plaintext

    key_id, plaintext = _run_in_session(_admin_settings(data_dir), work)
    # The id is what `keys revoke` takes; printing it saves a `keys list` to find it.
    typer.echo(f"Created {key_id} ({name}) for {user}")
    typer.echo(f"API key (shown only this once): {plaintext}")


@keys_app.command("list")
def list_keys(user: Annotated[str, typer.Option("--user", help="Username")], data_dir: DataDir = None) -> None:
    """List a user's active keys (prefixes only)."""

    async def work(session: AsyncSession) -> list[str]:
        account = await account_service.get_by_username(session, user)
        keys = await api_key_service.list_active(session, account.id)
        return [
            f"{key.id}  {key.key_prefix}…  {key.name}  scopes={','.join(key.scopes) or 'all'}"
            f"  expires={isoformat(key.expires_at) or 'never'}"
            f"  last_used={isoformat(key.last_used_at) or 'never'}"
            for key in keys
        ]

    for line in _run_in_session(_admin_settings(data_dir), work):
        typer.echo(line)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key's id (key_…)")], data_dir: DataDir = None) -> None:
    """Revoke a key by id; it stops working at once."""

    async def work(session: AsyncSession) -> str:
        found = await ApiKeyRepository(session).get_any_active(key_id)
        if found is None:
            raise AppError(f"no active key '{key_id}'")
        key = await api_key_service.revoke(session, found.account_id, key_id)
        return key.name

    typer.echo(f"Revoked {key_id} ({_run_in_session(_admin_settings(data_dir), work)})")


@app.command()
def watch(
    target: Annotated[str, typer.Argument(help=TARGET_HELP)],
    url: Annotated[
        str, typer.Option(envvar="ULTRALYTICS_PLATFORM_URL", help="The server (as the official clients find it)")
    ] = "http://127.0.0.1:8000",
    key: Annotated[str | None, typer.Option(envvar="ULTRALYTICS_API_KEY", help="API key (ul_…)")] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls")] = 3.0,
    logs: Annotated[bool, typer.Option("--logs", help="Also print the job's console output")] = False,
) -> None:
    """Follow a training run or an export until it ends: exit 0 completed, 1 failed, 2 cancelled or bad
    input, 130 on Ctrl-C (the job keeps running)."""
    if not key:
        typer.echo("error: no API key: pass --key or set ULTRALYTICS_API_KEY", err=True)
        raise typer.Exit(2)
    raise typer.Exit(watch_job(target, url=url, key=key, interval=interval, logs=logs))


def main() -> None:
    app()
