"""``webhook.deliver``: send queued deliveries, signed (Standard Webhooks), and retry them on a schedule.

The queue is the ``webhook_deliveries`` table: a delivery is claimed with a lease by a conditional update
(so two server processes never send the same attempt), sent outside any transaction, and settled in a
new one with a row per attempt. A receiver that is down loses nothing, and a server that stops
mid-attempt leaves a lease that runs out, after which any server sends that delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from standardwebhooks import Webhook as Signer

from yolostack import __version__
from yolostack.config import WebhookSettings
from yolostack.core.db import Database
from yolostack.core.ids import new_id
from yolostack.core.timeutil import utcnow
from yolostack.core.urls import Resolver
from yolostack.tables import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from yolostack.webhooks.repository import DeliveryRepository
from yolostack.webhooks.targets import TargetRefused, vet_url

logger = logging.getLogger(__name__)

USER_AGENT = f"yolostack-webhooks/{__version__}"
# The lease outlives the longest attempt by this much, so a live worker never loses its delivery.
LEASE_MARGIN = timedelta(seconds=60)
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Claimed:
    """One attempt this worker holds the lease for: everything needed to send it without the database."""

    delivery_id: str
    attempt: int
    message_id: str
    body: str
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    attempted_at: datetime
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class DeliveryWorker:
    """Claims due deliveries each round and sends them concurrently (up to ``max_concurrency``)."""

    def __init__(self, database: Database, settings: WebhookSettings, *, resolver: Resolver | None = None) -> None:
        self.database = database
        self.settings = settings
        self.resolver = resolver
        # No keep-alive: each attempt connects to the address vetted for it, with its own TLS name.
        self._client = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run_pending(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending; returns how many."""
        free = self.settings.max_concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        async with self.database.sessionmaker() as session:
            due = await DeliveryRepository(session).due_ids(utcnow(), free)
        started = 0
        for delivery_id in due:
            claimed = await self._claim(delivery_id)
            if claimed is None:
                continue
            task = asyncio.create_task(self._deliver(claimed), name=f"webhook.deliver:{delivery_id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            started += 1
        return started

    async def close(self) -> None:
        """Stop sending; an attempt cut short keeps its lease and is sent again once the lease runs out."""
        for task in list(self._in_flight):
            task.cancel()
        for task in list(self._in_flight):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    async def _claim(self, delivery_id: str) -> Claimed | None:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.timeout_seconds) + LEASE_MARGIN
        async with self.database.sessionmaker() as session, session.begin():
            if not await DeliveryRepository(session).claim(delivery_id, now, lease_until):
                return None
            delivery = await session.get(WebhookDelivery, delivery_id)
            webhook = None if delivery is None else await session.get(Webhook, delivery.webhook_id)
            if delivery is None or webhook is None:
                return None
            if not webhook.is_active:
                delivery.status = DeliveryStatus.failed
                delivery.last_error = "webhook is disabled"
                delivery.lease_until = None
                delivery.next_attempt_at = None
                return None
            return Claimed(
                delivery_id=delivery.id,
                attempt=delivery.attempts,
                message_id=delivery.message_id,
                body=json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False),
                url=webhook.url,
                secret=webhook.secret,
            )

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            outcome = await self._send(claimed)
            await self._settle(claimed, outcome)
        except Exception:
            # The lease runs out and the delivery is tried again; nothing is lost.
            logger.exception("webhook delivery %s failed unexpectedly", claimed.delivery_id)

    async def _send(self, claimed: Claimed) -> Outcome:
        """One signed POST to the re-vetted URL; never raises for anything the receiver or network does."""
        attempted_at = utcnow()
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                target = await vet_url(
                    claimed.url, allow_private=self.settings.allow_private_urls, resolver=self.resolver
                )
                request = target.build_request(self._client, claimed.body.encode(), _headers(claimed))
                # The answer's body is never read: only its status counts, and a huge one costs nothing.
                response = await self._client.send(request, stream=True)
                status_code = response.status_code
                await response.aclose()
            if not 200 <= status_code < 300:
                error = f"receiver answered HTTP {status_code}"
        except TargetRefused as refused:
            error = f"refused: {refused.message}"
        except TimeoutError:
            error = f"timed out after {self.settings.timeout_seconds:g} s"
        except httpx.HTTPError as failure:
            error = _describe(failure)
        duration_ms = round((time.monotonic() - started) * 1000)
        return Outcome(status_code, error, attempted_at, duration_ms)

    async def _settle(self, claimed: Claimed, outcome: Outcome) -> None:
        """Record the attempt; then delivered, scheduled for a retry, or failed for good."""
        now = utcnow()
        values: dict[str, Any] = {
            "lease_until": None,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
        schedule = self.settings.retry_schedule
        if outcome.delivered:
            values.update(status=DeliveryStatus.delivered, delivered_at=now, next_attempt_at=None)
        elif claimed.attempt <= len(schedule):
            retry_in = timedelta(seconds=schedule[claimed.attempt - 1])
            values.update(status=DeliveryStatus.pending, next_attempt_at=now + retry_in)
        else:
            values.update(status=DeliveryStatus.failed, next_attempt_at=None)
        async with self.database.sessionmaker() as session, session.begin():
            repository = DeliveryRepository(session)
            if not await repository.settle(claimed.delivery_id, claimed.attempt, values):
                # Deleted with its webhook meanwhile, or (after a very long stall) taken over by another worker.
                return
            await repository.add_attempt(
                WebhookAttempt(
                    id=new_id("attempt"),
                    delivery_id=claimed.delivery_id,
                    number=claimed.attempt,
                    attempted_at=outcome.attempted_at,
                    status_code=outcome.status_code,
                    error=(outcome.error or "")[:MAX_ERROR_LENGTH] or None,
                    duration_ms=outcome.duration_ms,
                )
            )


def _headers(claimed: Claimed) -> dict[str, str]:
    """The Standard Webhooks headers: the same ``webhook-id`` on every retry, a fresh timestamp and signature."""
    timestamp = utcnow()
    signature = Signer(claimed.secret).sign(claimed.message_id, timestamp, claimed.body)
    return {
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _describe(error: httpx.HTTPError) -> str:
    """A short reason for a transport failure."""
    if isinstance(error, httpx.ConnectError):
        return "connection failed"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.RemoteProtocolError):
        return "invalid response"
    return type(error).__name__
