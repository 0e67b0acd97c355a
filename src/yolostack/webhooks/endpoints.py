from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.convertors import Convertor, register_url_convertor

from yolostack.auth.dependencies import AuthContext, Authenticator
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.pagination import PageMeta, PageParamsQuery
from yolostack.core.responses import Body, SeedPage, SeedResponse, both, link, seed
from yolostack.tables import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from yolostack.webhooks.schemas import (
    WebhookAttemptSchema,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookDeliverySchema,
    WebhookPage,
    WebhookSchema,
)
from yolostack.webhooks.service import webhooks as webhook_service

WebhooksAuth = Annotated[AuthContext, Depends(Authenticator(Scope.webhooks))]


class _IdConvertor(Convertor[str]):
    """Matches ids only (they contain ``_``; slugs never do), so ``/api/webhooks/training/…`` and
    ``/api/webhooks/models/…`` (the trainer's inbound telemetry) never reach these routes."""

    regex = "[^/_]*_[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("webhook_id", _IdConvertor())

router = APIRouter(tags=["webhooks"])


@router.get("", response_model=WebhookPage)
async def list_webhooks(auth: WebhooksAuth, session: DbSession, pagination: PageParamsQuery) -> Body:
    """List the account's webhooks (never their secrets)."""
    rows, total = await webhook_service.list_webhooks(session, auth.account_id, pagination)
    listed = [WebhookSchema.model_validate(row) for row in rows]
    return both(listed, meta=PageMeta.of(pagination, total), webhooks=listed, total=total)


_CREATED_LINKS = {
    "GetWebhook": link("get_webhook", webhook_id="$response.body#/data/id"),
    "ListWebhookDeliveries": link("list_webhook_deliveries", webhook_id="$response.body#/data/id"),
    "DeleteWebhook": link("delete_webhook", webhook_id="$response.body#/data/id"),
}


@router.post(
    "", status_code=201, response_model=SeedResponse[WebhookCreated], responses={201: {"links": _CREATED_LINKS}}
)
async def create_webhook(auth: WebhooksAuth, session: DbSession, request: Request, data: WebhookCreate) -> Body:
    """Subscribe a URL to events; the signing ``secret`` is in this response and nowhere else, ever."""
    settings: Settings = request.app.state.settings
    webhook = await webhook_service.create(session, auth.account_id, data, settings.webhooks)
    return seed(WebhookCreated.model_validate(webhook))


@router.get("/{webhook_id:webhook_id}", response_model=SeedResponse[WebhookSchema])
async def get_webhook(auth: WebhooksAuth, session: DbSession, webhook_id: str) -> Body:
    """One webhook of the account's."""
    return seed(_webhook(await webhook_service.get(session, auth.account_id, webhook_id)))


@router.delete("/{webhook_id:webhook_id}", response_model=SeedResponse[WebhookDeleted])
async def delete_webhook(auth: WebhooksAuth, session: DbSession, webhook_id: str) -> Body:
    """Delete a webhook; its queued deliveries are dropped and nothing more is sent to it."""
    webhook = await webhook_service.delete(session, auth.account_id, webhook_id)
    return seed({"id": webhook.id, "deleted": True})


@router.get("/{webhook_id:webhook_id}/deliveries", response_model=SeedPage[WebhookDeliverySchema])
async def list_webhook_deliveries(
    auth: WebhooksAuth,
    session: DbSession,
    webhook_id: str,
    pagination: PageParamsQuery,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> Body:
    """The webhook's deliveries, newest first, each with every attempt made so far."""
    rows, total = await webhook_service.list_deliveries(session, auth.account_id, webhook_id, pagination, status=status)
    deliveries = [_delivery(delivery, attempts) for delivery, attempts in rows]
    return seed(deliveries, meta=PageMeta.of(pagination, total))


def _webhook(webhook: Webhook) -> WebhookSchema:
    return WebhookSchema.model_validate(webhook)


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliverySchema:
    return WebhookDeliverySchema(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        message_id=delivery.message_id,
        status=DeliveryStatus(delivery.status),
        attempt_count=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=delivery.payload,
        attempts=[WebhookAttemptSchema.model_validate(attempt) for attempt in attempts],
    )
