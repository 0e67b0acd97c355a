"""Webhook routes: create (secret once, events and URLs checked), list, get, delete, deliveries; ownership."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.activity_log import activity_events
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from yolostack.core.db import Database
from yolostack.webhooks.service import webhooks

WEBHOOKS = "/api/webhooks"
ALL_EVENTS = ["training.started", "training.epoch", "training.completed", "training.failed", "export.completed"]
LISTED_FIELDS = {"id", "url", "events", "description", "isActive", "createdAt", "updatedAt"}
RECEIVER = "http://127.0.0.1:9/hooks"


async def create_webhook(client: httpx.AsyncClient, user: User, *, url: str = RECEIVER, **body: Any) -> dict[str, Any]:
    payload = {"url": url, "events": ALL_EVENTS, **body}
    data: dict[str, Any] = ok(await client.post(WEBHOOKS, json=payload, headers=user.headers), 201)["data"]
    return data


def forbid_private(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """This server's default: receivers must be public addresses (the tests' own config allows loopback)."""
    monkeypatch.setattr(app.state.settings.webhooks, "allow_private_urls", False)


class TestCreateWebhook:
    async def test_returns_the_secret_once(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice, description="  CI notifications ")
        assert set(created) == LISTED_FIELDS | {"secret"}
        assert created["id"].startswith("webhook_")
        assert created["url"] == RECEIVER
        assert created["events"] == ALL_EVENTS
        assert created["description"] == "CI notifications"
        assert created["isActive"] is True
        secret: str = created["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32

        fetched = ok(await client.get(f"{WEBHOOKS}/{created['id']}", headers=alice.headers))
        listed = ok(await client.get(WEBHOOKS, headers=alice.headers))
        for response in (fetched, listed):
            assert secret not in str(response)

    async def test_each_webhook_has_its_own_secret(self, client: httpx.AsyncClient, alice: User) -> None:
        first = await create_webhook(client, alice)
        second = await create_webhook(client, alice)
        assert first["secret"] != second["secret"]
        assert first["id"] != second["id"]

    async def test_duplicate_events_are_kept_once(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice, events=["training.epoch", "export.completed", "training.epoch"])
        assert created["events"] == ["training.epoch", "export.completed"]

    async def test_unknown_event_is_422(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            WEBHOOKS, json={"url": RECEIVER, "events": ["training.started", "model.deleted"]}, headers=alice.headers
        )
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert "model.deleted" in body["error"]["message"]
        assert body["error"]["details"][0]["field"] == "events"

    async def test_no_events_is_422(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(WEBHOOKS, json={"url": RECEIVER, "events": []}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_missing_url_is_a_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(WEBHOOKS, json={"events": ALL_EVENTS}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://127.0.0.1/hooks",
            "file:///etc/passwd",
            "http://user:password@127.0.0.1/hooks",
            "not a url",
            "http:///hooks",
            "http://no-such-host.invalid/hooks",
        ],
    )
    async def test_bad_url_is_422(self, client: httpx.AsyncClient, alice: User, url: str) -> None:
        response = await client.post(WEBHOOKS, json={"url": url, "events": ALL_EVENTS}, headers=alice.headers)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == "url"

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice)
        (event,) = await activity_events(client, alice, "webhook.created")
        assert event["resourceId"] == created["id"]
        assert event["resourceType"] == "webhook"
        assert created["secret"] not in str(event)

    async def test_missing_key_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.post(WEBHOOKS, json={"url": RECEIVER, "events": ALL_EVENTS}), 401, "UNAUTHORIZED")

    async def test_key_without_webhooks_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["training"])
        response = await client.post(
            WEBHOOKS, json={"url": RECEIVER, "events": ALL_EVENTS}, headers={"Authorization": f"Bearer {key}"}
        )
        assert_error(response, 403, "FORBIDDEN")

    async def test_key_with_webhooks_scope_may(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["webhooks"])
        response = await client.post(WEBHOOKS, json={"url": RECEIVER, "events": ALL_EVENTS}, headers={"x-api-key": key})
        ok(response, 201)


class TestServerSideRequestForgery:
    """With the default settings a receiver must be a public address, however the URL spells it."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8000/hooks",
            "http://localhost/hooks",
            "http://10.0.0.5/hooks",
            "http://192.168.1.1/hooks",
            "http://172.16.0.1/hooks",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/hooks",
            "http://[::1]/hooks",
            "http://[::ffff:127.0.0.1]/hooks",
            "http://[fd00::1]/hooks",
            "http://2130706433/hooks",
        ],
    )
    async def test_private_address_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, alice: User, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        forbid_private(app, monkeypatch)
        response = await client.post(WEBHOOKS, json={"url": url, "events": ALL_EVENTS}, headers=alice.headers)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == "url"
        assert ok(await client.get(WEBHOOKS, headers=alice.headers))["data"] == []

    async def test_public_address_is_accepted(
        self, app: FastAPI, client: httpx.AsyncClient, alice: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        forbid_private(app, monkeypatch)
        created = await create_webhook(client, alice, url="https://8.8.8.8/hooks?token=abc")
        assert created["url"] == "https://8.8.8.8/hooks?token=abc"

    async def test_operator_may_allow_private_addresses(self, client: httpx.AsyncClient, alice: User) -> None:
        # The tests' settings set YOLOSTACK_WEBHOOKS__ALLOW_PRIVATE_URLS=true.
        await create_webhook(client, alice, url="http://127.0.0.1:8000/hooks")


class TestListWebhooks:
    async def test_both_dialects_with_meta(self, client: httpx.AsyncClient, alice: User) -> None:
        created = [await create_webhook(client, alice, url=f"http://127.0.0.1:9/{n}") for n in range(3)]
        body = ok(await client.get(WEBHOOKS, params={"page": 1, "limit": 2}, headers=alice.headers))
        assert body["data"] == body["webhooks"]
        assert body["meta"] == {"page": 1, "limit": 2, "total": 3}
        assert [listed["id"] for listed in body["data"]] == [webhook["id"] for webhook in created[:2]]
        for listed in body["data"]:
            assert set(listed) == LISTED_FIELDS

    async def test_only_own_webhooks(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        mine = await create_webhook(client, alice)
        await create_webhook(client, bob)
        listed = ok(await client.get(WEBHOOKS, headers=alice.headers))["data"]
        assert [webhook["id"] for webhook in listed] == [mine["id"]]

    async def test_empty(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(WEBHOOKS, headers=alice.headers))
        assert body["data"] == []
        assert body["meta"] == {"page": 1, "limit": 20, "total": 0}


class TestGetWebhook:
    async def test_own(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice)
        fetched = ok(await client.get(f"{WEBHOOKS}/{created['id']}", headers=alice.headers))["data"]
        assert fetched == {key: value for key, value in created.items() if key != "secret"}

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        created = await create_webhook(client, alice)
        assert_error(await client.get(f"{WEBHOOKS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{WEBHOOKS}/webhook_nosuchone", headers=alice.headers), 404, "NOT_FOUND")

    async def test_slugs_are_not_webhook_ids(self, client: httpx.AsyncClient, alice: User) -> None:
        """/api/webhooks/training/… and /models/… belong to the trainer's telemetry: ids only match here."""
        for path in ("training", "models", "training/metrics", "models/upload"):
            response = await client.get(f"{WEBHOOKS}/{path}", headers=alice.headers)
            assert response.status_code in (404, 405)
            assert response.json()["error"]["message"] != "Webhook not found"


class TestDeleteWebhook:
    async def test_deletes(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice)
        body = ok(await client.delete(f"{WEBHOOKS}/{created['id']}", headers=alice.headers))
        assert body["data"] == {"id": created["id"], "deleted": True}
        assert_error(await client.get(f"{WEBHOOKS}/{created['id']}", headers=alice.headers), 404, "NOT_FOUND")
        assert_error(await client.delete(f"{WEBHOOKS}/{created['id']}", headers=alice.headers), 404, "NOT_FOUND")
        (event,) = await activity_events(client, alice, "webhook.deleted")
        assert event["resourceId"] == created["id"]

    async def test_takes_its_deliveries_along(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_webhook(client, alice, url="http://127.0.0.1:9/never")
        async with database.sessionmaker() as session, session.begin():
            await webhooks.emit(session, alice.account.id, "training.started", {"modelId": "model_x"})
        ok(await client.delete(f"{WEBHOOKS}/{created['id']}", headers=alice.headers))
        async with database.sessionmaker() as session, session.begin():
            assert await webhooks.emit(session, alice.account.id, "training.started", {}) == 0

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        created = await create_webhook(client, alice)
        assert_error(await client.delete(f"{WEBHOOKS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{WEBHOOKS}/{created['id']}", headers=alice.headers))


class TestListDeliveries:
    async def test_queued_delivery_is_listed(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_webhook(client, alice, events=["export.completed"])
        async with database.sessionmaker() as session, session.begin():
            count = await webhooks.emit(session, alice.account.id, "export.completed", {"exportId": "export_1"})
        assert count == 1
        body = ok(await client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=alice.headers))
        (delivery,) = body["data"]
        assert body["meta"] == {"page": 1, "limit": 20, "total": 1}
        assert delivery["webhookId"] == created["id"]
        assert delivery["event"] == "export.completed"
        assert delivery["messageId"].startswith("msg_")
        assert delivery["payload"]["type"] == "export.completed"
        assert delivery["payload"]["data"] == {"exportId": "export_1"}
        assert delivery["status"] in ("pending", "delivering", "failed")
        assert isinstance(delivery["attempts"], list)

    async def test_status_filter(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_webhook(client, alice)
        url = f"{WEBHOOKS}/{created['id']}/deliveries"
        assert ok(await client.get(url, params={"status": "delivered"}, headers=alice.headers))["data"] == []
        response = await client.get(url, params={"status": "lost"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        created = await create_webhook(client, alice)
        url = f"{WEBHOOKS}/{created['id']}/deliveries"
        assert_error(await client.get(url, headers=bob.headers), 404, "NOT_FOUND")


class TestEmit:
    async def test_only_subscribed_active_webhooks_of_the_account(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        await create_webhook(client, alice, events=["training.completed"])
        await create_webhook(client, alice, events=["training.completed", "training.failed"])
        await create_webhook(client, bob)
        async with database.sessionmaker() as session, session.begin():
            assert await webhooks.emit(session, alice.account.id, "training.completed", {}) == 2
            assert await webhooks.emit(session, alice.account.id, "training.failed", {}) == 1
            assert await webhooks.emit(session, alice.account.id, "training.epoch", {}) == 0

    async def test_unknown_event_is_a_programming_error(self, database: Database, alice: User) -> None:
        async with database.sessionmaker() as session:
            with pytest.raises(ValueError, match="unknown webhook event"):
                await webhooks.emit(session, alice.account.id, "training.exploded", {})
