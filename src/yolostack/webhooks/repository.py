from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Select, delete, select

from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery


class WebhookRepository(Repository):
    def _scoped(self, owner_id: str) -> Select[Webhook]:
        return select(Webhook).where(Webhook.owner_id == owner_id)

    async def list_for_owner(self, owner_id: str, params: PageParams) -> tuple[Sequence[Webhook], int]:
        statement = self._scoped(owner_id).order_by(Webhook.created_at, Webhook.id)
        return await self.page(statement, params)

    async def get(self, owner_id: str, webhook_id: str) -> Webhook | None:
        return await self.session.scalar(self._scoped(owner_id).where(Webhook.id == webhook_id))

    async def active_for_event(self, owner_id: str, event: str) -> list[Webhook]:
        # An account has a handful of webhooks: filtering the JSON list here works the same on every database.
        active = await self.session.scalars(
            self._scoped(owner_id).where(Webhook.is_active.is_(True)).order_by(Webhook.created_at, Webhook.id)
        )
        return [webhook for webhook in active if event in webhook.events]

    async def add(self, webhook: Webhook) -> Webhook:
        self.session.add(webhook)
        await self.session.flush()
        return webhook

    async def delete(self, owner_id: str, webhook_id: str) -> None:
        """Its deliveries and their attempts go with it (ON DELETE CASCADE)."""
        await self.session.execute(
            delete(Webhook)
            .where(Webhook.owner_id == owner_id, Webhook.id == webhook_id)
            .execution_options(synchronize_session=False)
        )


class DeliveryRepository(Repository):
    async def add_all(self, deliveries: Iterable[WebhookDelivery]) -> None:
        self.session.add_all(deliveries)
        await self.session.flush()

    async def list_for_webhook(
        self, owner_id: str, webhook_id: str, params: PageParams, *, status: DeliveryStatus | None = None
    ) -> tuple[Sequence[WebhookDelivery], int]:
        statement = select(WebhookDelivery).where(
            WebhookDelivery.owner_id == owner_id, WebhookDelivery.webhook_id == webhook_id
        )
        if status is not None:
            statement = statement.where(WebhookDelivery.status == status)
        statement = statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        return await self.page(statement, params)

    async def attempts_of(self, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
        """Every attempt of the given deliveries, in order, by delivery id."""
        found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
        if not delivery_ids:
            return found
        attempts = await self.session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        for attempt in attempts:
            found[attempt.delivery_id].append(attempt)
        return found

    async def add_attempt(self, attempt: WebhookAttempt) -> None:
        self.session.add(attempt)
        await self.session.flush()
