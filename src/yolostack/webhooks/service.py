"""Webhook subscriptions, and ``webhooks.emit``: how training and export code queue an event for delivery."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.config import WebhookSettings
from yolostack.core.errors import BadRequest, NotFound
from yolostack.core.ids import new_id
from yolostack.core.pagination import PageParams
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.tables import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from yolostack.webhooks.repository import DeliveryRepository, WebhookRepository
from yolostack.webhooks.schemas import WebhookCreate, WebhookEvent
from yolostack.webhooks.targets import TargetRefused, vet_url

EVENTS = frozenset(str(event) for event in WebhookEvent)
SECRET_BYTES = 32


def generate_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class WebhookService:
    async def list_webhooks(
        self, session: AsyncSession, owner_id: str, params: PageParams
    ) -> tuple[Sequence[Webhook], int]:
        return await WebhookRepository(session).list_for_owner(owner_id, params)

    async def get(self, session: AsyncSession, owner_id: str, webhook_id: str) -> Webhook:
        webhook = await WebhookRepository(session).get(owner_id, webhook_id)
        if webhook is None:
            raise NotFound("Webhook not found")
        return webhook

    async def create(
        self, session: AsyncSession, owner_id: str, data: WebhookCreate, settings: WebhookSettings
    ) -> Webhook:
        """Subscribe a URL to events; the returned row carries the secret, which the caller shows once."""
        events = _check_events(data.events)
        url = data.url.strip()
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                await vet_url(url, allow_private=settings.allow_private_urls)
        except TargetRefused as error:
            raise BadRequest(error.message, details=[{"field": "url", "message": error.message}]) from None
        except TimeoutError:
            raise BadRequest("url host could not be resolved in time", details=[{"field": "url"}]) from None
        description = data.description.strip() if data.description else None
        webhook = Webhook(
            id=new_id("webhook"),
            owner_id=owner_id,
            url=url,
            events=events,
            secret=generate_secret(),
            description=description or None,
        )
        await WebhookRepository(session).add(webhook)
        await activity_service.record(
            session,
            owner_id,
            "webhook.created",
            resource_type="webhook",
            resource_id=webhook.id,
            resource_name=url,
            message=f"Webhook to {url} created",
            details={"events": events},
        )
        return webhook

    async def delete(self, session: AsyncSession, owner_id: str, webhook_id: str) -> Webhook:
        """Remove the webhook with its pending deliveries and their history."""
        webhook = await self.get(session, owner_id, webhook_id)
        await WebhookRepository(session).delete(owner_id, webhook.id)
        await activity_service.record(
            session,
            owner_id,
            "webhook.deleted",
            resource_type="webhook",
            resource_id=webhook.id,
            resource_name=webhook.url,
            message=f"Webhook to {webhook.url} deleted",
        )
        return webhook

    async def list_deliveries(
        self,
        session: AsyncSession,
        owner_id: str,
        webhook_id: str,
        params: PageParams,
        *,
        status: DeliveryStatus | None = None,
    ) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], int]:
        """A page of the webhook's deliveries, newest first, each with its attempts in order."""
        webhook = await self.get(session, owner_id, webhook_id)
        repository = DeliveryRepository(session)
        deliveries, total = await repository.list_for_webhook(owner_id, webhook.id, params, status=status)
        attempts = await repository.attempts_of([delivery.id for delivery in deliveries])
        return [(delivery, attempts[delivery.id]) for delivery in deliveries], total

    async def emit(self, session: AsyncSession, account_id: str, event: str, data: dict[str, Any]) -> int:
        """Queue ``event`` for every active webhook of the account subscribed to it; returns how many.

        Runs inside the caller's transaction and never commits: the deliveries exist exactly when the
        change that caused them does. ``data`` must be JSON-serialisable; the worker sends
        ``{"type": event, "timestamp": …, "data": data}``.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(sorted(EVENTS))}")
        subscribed = await WebhookRepository(session).active_for_event(account_id, event)
        if not subscribed:
            return 0
        now = utcnow()
        payload = {"type": event, "timestamp": isoformat(now), "data": data}
        deliveries = [
            WebhookDelivery(
                id=new_id("delivery"),
                webhook_id=webhook.id,
                owner_id=account_id,
                event=event,
                payload=payload,
                message_id=new_id("msg"),
                status=DeliveryStatus.pending,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for webhook in subscribed
        ]
        await DeliveryRepository(session).add_all(deliveries)
        return len(deliveries)


def _check_events(events: list[str]) -> list[str]:
    """The requested events, de-duplicated in order; a 400 naming any that do not exist."""
    if not events:
        raise BadRequest("events must name at least one event", details=[{"field": "events"}])
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        message = f"unknown event(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENTS))}"
        raise BadRequest(message, details=[{"field": "events", "message": message}])
    return list(dict.fromkeys(events))


webhooks = WebhookService()
