"""Fixtures for outgoing webhooks: a client app with an endpoint on a loopback receiver (the `world` fixture is
tests/support/stripe.py's)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from payment.app_webhooks import catalogue, endpoints
from payment.models import App, OutboxMessage, WebhookEndpoint
from payment.runtime import Services
from tests.support import factories


@dataclass
class ClientApp:
    app: App
    api_key: str
    endpoint: WebhookEndpoint
    secret: str


async def client_app(
    services: Services, url: str, *, event_types: tuple[str, ...] = catalogue.EVENT_TYPES
) -> ClientApp:
    """A new app with one endpoint wanting `event_types`, created as the admin creates it."""
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session)
        issued = await endpoints.create(
            session,
            app_id=app.id,
            url=url,
            event_types=list(event_types),
            production=False,
            secret_key=services.settings.secret_key,
            actor="test",
        )
    return ClientApp(app, key, issued.endpoint, issued.secret)


async def messages(services: Services, endpoint_id: int) -> list[OutboxMessage]:
    """The endpoint's outbox rows in queue order."""
    async with services.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.target == str(endpoint_id))
                    .order_by(OutboxMessage.position, OutboxMessage.id)
                )
            ).all()
        )
