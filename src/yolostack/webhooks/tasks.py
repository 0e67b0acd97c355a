"""``webhook.deliver``: send queued deliveries, signed (Standard Webhooks), and retry them on a schedule.

The queue is the ``webhook_deliveries`` table, leased through ``worker.leases`` (so two server processes
never send the same attempt): a delivery is sent outside any transaction and settled in a new one, with
a row per attempt. A receiver that is down loses nothing, and a server that stops
mid-attempt leaves a lease that runs out, after which any server sends that delivery again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
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
from yolostack.worker.leases import Lease, LeaseQueue
from yolostack.worker.periodic import STOP_GRACE
from yolostack.worker.queue import QueueWorker
from yolostack.worker.registry import WorkerContext, workers

logger = logging.getLogger(__name__)

USER_AGENT = f"yolostack-webhooks/{__version__}"
# The lease outlives the longest attempt by this much, so a live worker never loses its delivery.
LEASE_MARGIN = timedelta(seconds=60)
MAX_ERROR_LENGTH = 500


def delivery_queue(settings: WebhookSettings) -> LeaseQueue:
    """The ``webhook_deliveries`` table as a queue: pending rows are due at ``next_attempt_at``."""
    return LeaseQueue(
        name="webhook.deliver",
        id=WebhookDelivery.id,
        ready=WebhookDelivery.status == DeliveryStatus.pending,
        held=WebhookDelivery.status == DeliveryStatus.delivering,
        lease=WebhookDelivery.lease_until,
        holder=WebhookDelivery.lease_holder,
        attempts=WebhookDelivery.attempts,
        ttl=timedelta(seconds=settings.timeout_seconds) + LEASE_MARGIN,
        max_attempts=1 + len(settings.retry_schedule),
        due_at=WebhookDelivery.next_attempt_at,
        claimed={"status": DeliveryStatus.delivering},
        unclaimed={"status": DeliveryStatus.pending},
        order_by=(WebhookDelivery.next_attempt_at,),
    )


@dataclass(frozen=True)
class Claimed:
    """One attempt this worker holds the lease for: everything needed to send it without the database."""

    lease: Lease
    message_id: str
    body: str
    url: str
    secret: str

    @property
    def attempt(self) -> int:
        return self.lease.attempt

    @property
    def delivery_id(self) -> str:
        return self.lease.row_id


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

    name = "webhook.deliver"

    def __init__(self, database: Database, settings: WebhookSettings, *, resolver: Resolver | None = None) -> None:
        self.database = database
        self.settings = settings
        self.resolver = resolver
        # No keep-alive: each attempt connects to the address vetted for it, with its own TLS name.
        self._client = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.runner = QueueWorker(
            database,
            delivery_queue(settings),
            self.handle,
            interval=settings.poll_interval_seconds,
            concurrency=settings.max_concurrency,
            give_up=self._give_up,
        )

    def start(self) -> None:
        self.runner.start()

    def wake(self) -> None:
        self.runner.wake()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more; attempts under way get ``grace`` seconds, then go back to the queue (the
        receiver may see that attempt again, with the same ``webhook-id``)."""
        await self.runner.stop(grace)
        await self._client.aclose()

    async def run_pending(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending; returns how many."""
        return await self.runner.run_round()

    async def close(self) -> None:
        await self.stop(0)

    async def handle(self, lease: Lease) -> None:
        claimed = await self._load(lease)
        if claimed is None:
            return
        outcome = await self._send(claimed)
        await self._settle(claimed, outcome)

    async def _load(self, lease: Lease) -> Claimed | None:
        async with self.database.sessionmaker() as session, session.begin():
            delivery = await session.get(WebhookDelivery, lease.row_id)
            webhook = None if delivery is None else await session.get(Webhook, delivery.webhook_id)
            if delivery is None or webhook is None:
                return None  # deleted with its webhook meanwhile
            if not webhook.is_active:
                values = {"status": DeliveryStatus.failed, "last_error": "webhook is disabled", "next_attempt_at": None}
                await lease.finish(session, values)
                return None
            return Claimed(
                lease=lease,
                message_id=delivery.message_id,
                body=json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False),
                url=webhook.url,
                secret=webhook.secret,
            )

    async def _give_up(self, session: AsyncSession, delivery_id: str) -> None:
        """The last attempt's worker stopped before it settled (a crash): the delivery fails."""
        values = {
            "status": DeliveryStatus.failed,
            "next_attempt_at": None,
            "last_error": "the server stopped while sending the last attempt",
        }
        await self.runner.queue.abandon(session, delivery_id, utcnow(), values)

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
        """Record the attempt; then delivered, queued again after the schedule's backoff, or failed for good."""
        now = utcnow()
        values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
        schedule = self.settings.retry_schedule
        lease = claimed.lease
        async with self.database.sessionmaker() as session, session.begin():
            if outcome.delivered:
                values.update(status=DeliveryStatus.delivered, delivered_at=now, next_attempt_at=None)
                settled = await lease.finish(session, values)
            elif claimed.attempt <= len(schedule):
                settled = await lease.retry(session, timedelta(seconds=schedule[claimed.attempt - 1]), values, now=now)
            else:
                values.update(status=DeliveryStatus.failed, next_attempt_at=None)
                settled = await lease.finish(session, values)
            if not settled:
                # Deleted with its webhook meanwhile, or (after a very long stall) taken over by another worker.
                return
            repository = DeliveryRepository(session)
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


@workers.register("webhook.deliver")
def delivery_worker(context: WorkerContext) -> DeliveryWorker:
    return DeliveryWorker(context.database, context.settings.webhooks)
