"""Delivery end to end: the real app's worker POSTs to a real receiver on loopback, signed, and retries.

Events are queued through the real ``webhooks.emit`` in a committed transaction, as training and export
code does; the receiver verifies every request with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from tests.fixtures.assertions import ok
from tests.fixtures.factories import User
from tests.fixtures.server import free_port
from tests.webhooks.receiver import Receiver, eventually
from yolostack.config import WebhookSettings
from yolostack.core.db import Database
from yolostack.core.ids import new_id
from yolostack.core.timeutil import utcnow
from yolostack.tables import DeliveryStatus, WebhookDelivery
from yolostack.webhooks.service import webhooks
from yolostack.webhooks.tasks import DeliveryWorker, delivery_queue

WEBHOOKS = "/api/webhooks"
EVENTS: dict[str, dict[str, Any]] = {
    "training.started": {"modelId": "model_a", "epochs": 3},
    "training.epoch": {"modelId": "model_a", "epoch": 1, "metrics": {"mAP50": 0.5}},
    "training.completed": {"modelId": "model_a", "metrics": {"mAP50-95": 0.42}},
    "training.failed": {"modelId": "model_b", "error": "CUDA out of memory"},
    "export.completed": {"exportId": "export_c", "format": "onnx"},
}


@pytest.fixture
async def receiver() -> Any:
    started = Receiver().start()
    yield started
    started.stop()


async def subscribe(client: httpx.AsyncClient, user: User, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body = {"url": url, "events": events or list(EVENTS)}
    created: dict[str, Any] = ok(await client.post(WEBHOOKS, json=body, headers=user.headers), 201)["data"]
    return created


async def emit(database: Database, user: User, events: dict[str, dict[str, Any]]) -> int:
    """Queue events in one committed transaction, the way the training and export code does."""
    async with database.sessionmaker() as session, session.begin():
        return sum([await webhooks.emit(session, user.account.id, event, data) for event, data in events.items()])


async def deliveries(client: httpx.AsyncClient, user: User, webhook_id: str) -> list[dict[str, Any]]:
    body = ok(await client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", params={"limit": 100}, headers=user.headers))
    rows: list[dict[str, Any]] = body["data"]
    return rows


def settled(rows: list[dict[str, Any]], count: int) -> bool:
    return len(rows) == count and all(row["status"] in ("delivered", "failed") for row in rows)


class TestDelivery:
    async def test_receiver_down_for_three_attempts_gets_every_event_signed(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        receiver = Receiver(fail_first=3).start()
        try:
            webhook = await subscribe(client, alice, receiver.url)
            assert await emit(database, alice, EVENTS) == len(EVENTS)
            await eventually(lambda: len(receiver.delivered()) == len(EVENTS), what="every event delivered")
        finally:
            receiver.stop()

        verifier = Verifier(webhook["secret"])
        seen: dict[str, str] = {}
        for accepted in receiver.delivered():
            tries = receiver.of(accepted.message_id)
            # Three 503s, then the 200; the webhook-id and the body are the same on every retry.
            assert [request.status for request in tries] == [503, 503, 503, 200]
            assert {request.body for request in tries} == {accepted.body}
            for request in tries:
                verifier.verify(request.body, request.headers)
                assert request.headers["content-type"] == "application/json"
            payload = json.loads(accepted.body)
            assert set(payload) == {"type", "timestamp", "data"}
            assert payload["data"] == EVENTS[payload["type"]]
            seen[payload["type"]] = accepted.message_id
        assert set(seen) == set(EVENTS)
        assert len(set(seen.values())) == len(EVENTS)

        # The receiver has answered the last attempt; the worker records it a moment later.
        rows = await eventually(lambda: _settled_rows(client, alice, webhook["id"], len(EVENTS)), what="settled")
        assert len(rows) == len(EVENTS)
        for row in rows:
            assert row["status"] == "delivered"
            assert row["messageId"] == seen[row["event"]]
            assert row["attemptCount"] == 4
            assert row["deliveredAt"] is not None
            assert row["lastStatusCode"] == 200
            assert row["lastError"] is None
            assert [attempt["number"] for attempt in row["attempts"]] == [1, 2, 3, 4]
            assert [attempt["statusCode"] for attempt in row["attempts"]] == [503, 503, 503, 200]
            assert row["attempts"][0]["error"] == "receiver answered HTTP 503"
            assert row["attempts"][-1]["error"] is None
            assert all(attempt["durationMs"] >= 0 for attempt in row["attempts"])

    async def test_signature_fails_with_another_secret(
        self, client: httpx.AsyncClient, database: Database, alice: User, receiver: Receiver
    ) -> None:
        mine = await subscribe(client, alice, receiver.url, ["training.started"])
        other = await subscribe(client, alice, "http://127.0.0.1:9/elsewhere", ["training.epoch"])
        await emit(database, alice, {"training.started": {}})
        (accepted,) = await eventually(receiver.delivered, what="the delivery")
        Verifier(mine["secret"]).verify(accepted.body, accepted.headers)
        with pytest.raises(Exception, match="signature"):
            Verifier(other["secret"]).verify(accepted.body, accepted.headers)

    async def test_unreachable_receiver_fails_after_the_schedule(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        webhook = await subscribe(client, alice, f"http://127.0.0.1:{free_port()}/hooks", ["training.failed"])
        await emit(database, alice, {"training.failed": {"error": "boom"}})
        (row,) = await eventually(
            lambda: _settled_rows(client, alice, webhook["id"], 1), what="the delivery to give up"
        )
        assert row["status"] == "failed"
        # One attempt, then one per entry of the retry schedule (four in these tests).
        assert row["attemptCount"] == 5
        assert [attempt["number"] for attempt in row["attempts"]] == [1, 2, 3, 4, 5]
        assert {attempt["error"] for attempt in row["attempts"]} == {"connection failed"}
        assert {attempt["statusCode"] for attempt in row["attempts"]} == {None}
        assert row["lastError"] == "connection failed"
        assert row["nextAttemptAt"] is None

    async def test_receiver_that_comes_back_gets_what_it_missed(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        database: Database,
        alice: User,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(app.state.settings.webhooks, "retry_schedule", [0.3] * 40)
        receiver = Receiver()
        webhook = await subscribe(client, alice, receiver.url, ["training.completed"])
        await emit(database, alice, {"training.completed": {"modelId": "model_a"}})

        async def refused_twice() -> bool:
            rows = await deliveries(client, alice, webhook["id"])
            return len(rows[0]["attempts"]) >= 2

        await eventually(refused_twice, what="two refused attempts")
        receiver.start()
        try:
            (accepted,) = await eventually(receiver.delivered, what="the delivery after the receiver is back")
        finally:
            receiver.stop()
        Verifier(webhook["secret"]).verify(accepted.body, accepted.headers)
        (row,) = await eventually(lambda: _settled_rows(client, alice, webhook["id"], 1), what="delivered")
        assert row["status"] == "delivered"
        assert row["attempts"][0]["error"] == "connection failed"
        assert row["attempts"][-1]["statusCode"] == 200

    async def test_only_the_accounts_subscribed_webhooks_receive(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User, receiver: Receiver
    ) -> None:
        bobs = Receiver().start()
        try:
            await subscribe(client, alice, receiver.url, ["training.completed"])
            await subscribe(client, bob, bobs.url)
            assert await emit(database, alice, {"training.started": {}, "training.completed": {"n": 1}}) == 1
            (accepted,) = await eventually(receiver.delivered, what="alice's delivery")
            assert json.loads(accepted.body)["type"] == "training.completed"
            await asyncio.sleep(0.5)
            assert len(receiver.received) == 1
            assert bobs.received == []
        finally:
            bobs.stop()

    async def test_rolled_back_emit_sends_nothing(
        self, client: httpx.AsyncClient, database: Database, alice: User, receiver: Receiver
    ) -> None:
        await subscribe(client, alice, receiver.url)
        async with database.sessionmaker() as session:
            assert await webhooks.emit(session, alice.account.id, "training.started", {}) == 1
            await session.rollback()
        await emit(database, alice, {"training.epoch": {"epoch": 1}})
        (accepted,) = await eventually(receiver.delivered, what="the committed event")
        await asyncio.sleep(0.5)
        assert json.loads(accepted.body)["type"] == "training.epoch"
        assert len(receiver.received) == 1

    async def test_url_is_vetted_again_before_each_attempt(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        database: Database,
        alice: User,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        webhook = await subscribe(client, alice, receiver.url, ["training.epoch"])
        # As if the operator turned private receivers off (or the name now resolved to a private address).
        monkeypatch.setattr(app.state.settings.webhooks, "allow_private_urls", False)
        await emit(database, alice, {"training.epoch": {"epoch": 2}})
        (row,) = await eventually(lambda: _settled_rows(client, alice, webhook["id"], 1), what="refusals")
        assert row["status"] == "failed"
        assert all(attempt["error"].startswith("refused: ") for attempt in row["attempts"])
        assert receiver.received == []

    async def test_delivery_of_a_server_that_died_mid_attempt_is_resumed(
        self, client: httpx.AsyncClient, database: Database, alice: User, receiver: Receiver
    ) -> None:
        webhook = await subscribe(client, alice, receiver.url, ["export.completed"])
        async with database.sessionmaker() as session, session.begin():
            # A delivery another server claimed and never settled: its lease ran out a while ago.
            session.add(
                WebhookDelivery(
                    id=new_id("delivery"),
                    webhook_id=webhook["id"],
                    owner_id=alice.account.id,
                    event="export.completed",
                    payload={"type": "export.completed", "timestamp": "2026-12-03T10:00:00Z", "data": {}},
                    message_id=new_id("msg"),
                    status=DeliveryStatus.delivering,
                    attempts=1,
                    lease_until=utcnow() - timedelta(seconds=1),
                )
            )
        (accepted,) = await eventually(receiver.delivered, what="the resumed delivery")
        Verifier(webhook["secret"]).verify(accepted.body, accepted.headers)
        (row,) = await eventually(lambda: _settled_rows(client, alice, webhook["id"], 1), what="delivered")
        assert row["status"] == "delivered"
        assert row["attemptCount"] == 2
        assert [attempt["number"] for attempt in row["attempts"]] == [2]


class TestTwoServers:
    async def test_a_claimed_attempt_cannot_be_claimed_again(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await subscribe(client, alice, f"http://127.0.0.1:{free_port()}/hooks", ["training.started"])
        # Far in the future, so the app's own worker leaves it alone.
        async with database.sessionmaker() as session, session.begin():
            await webhooks.emit(session, alice.account.id, "training.started", {})
            delivery = await session.scalar(select(WebhookDelivery))
            assert delivery is not None
            delivery.next_attempt_at = utcnow() + timedelta(hours=1)
        later = utcnow() + timedelta(hours=2)
        queue = delivery_queue(WebhookSettings())
        async with database.sessionmaker() as session, session.begin():
            assert await queue.claim(session, delivery.id, later) is not None
        async with database.sessionmaker() as session, session.begin():
            assert await queue.claim(session, delivery.id, later) is None

    async def test_two_workers_send_each_delivery_once(
        self, client: httpx.AsyncClient, database: Database, alice: User, receiver: Receiver
    ) -> None:
        """A second server process on the same database: every event still arrives exactly once."""
        second = DeliveryWorker(database, WebhookSettings(allow_private_urls=True, retry_schedule=[0.2] * 4))
        webhook = await subscribe(client, alice, receiver.url, ["training.epoch"])
        try:
            async with database.sessionmaker() as session, session.begin():
                for epoch in range(20):
                    await webhooks.emit(session, alice.account.id, "training.epoch", {"epoch": epoch})

            async def both_workers_round() -> bool:
                await second.run_pending()
                return len(receiver.delivered()) >= 20

            await eventually(both_workers_round, what="20 deliveries")
            await asyncio.sleep(0.5)
        finally:
            await second.close()
        message_ids = [request.message_id for request in receiver.received]
        assert len(message_ids) == 20
        assert len(set(message_ids)) == 20
        rows = await deliveries(client, alice, webhook["id"])
        assert {row["status"] for row in rows} == {"delivered"}
        assert {row["attemptCount"] for row in rows} == {1}


async def _settled_rows(client: httpx.AsyncClient, user: User, webhook_id: str, count: int) -> list[dict[str, Any]]:
    rows = await deliveries(client, user, webhook_id)
    return rows if settled(rows, count) else []
