"""The webhook channel of the outbox: how a message reaches its endpoint, and an endpoint's health."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.app_webhooks import sender
from payment.app_webhooks.addresses import Resolver, system_resolver
from payment.app_webhooks.capture import KIND
from payment.app_webhooks.endpoints import signing_secrets
from payment.config import Settings
from payment.db import Database
from payment.models import WebhookEndpoint, utcnow
from payment.outbox.delivery import MAX_AGE, Channel, Claimed, Outcome, deliver_due

DISABLE_AFTER = MAX_AGE  # failing for as long as a message is retried: the app's admin must look


async def note_outcome(session: AsyncSession, target: str, outcome: Outcome, now: datetime) -> None:
    """Remember when an endpoint last worked; one that has failed every delivery for three days is disabled, with
    the reason shown to admins."""
    endpoint = await session.get(WebhookEndpoint, int(target), with_for_update=True)
    if endpoint is None:
        return
    if outcome.ok:
        endpoint.last_success_at, endpoint.failing_since = now, None
        return
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.enabled and now - endpoint.failing_since >= DISABLE_AFTER:
        endpoint.enabled, endpoint.disabled_at = False, now
        endpoint.disabled_reason = (
            f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery has failed since "
            f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC. Last error: {outcome.error or 'unknown'}"[:1000]
        )


async def _paused(session: AsyncSession) -> set[str]:
    return {str(i) for i in (await session.scalars(select(WebhookEndpoint.id).where(~WebhookEndpoint.enabled)))}


def webhook_channel(db: Database, settings: Settings, *, resolver: Resolver = system_resolver) -> Channel:
    """Deliveries as this deployment makes them: private addresses only outside staging and production."""
    timeout = float(settings.outgoing_webhook_timeout_seconds)

    async def send(message: Claimed) -> Outcome:
        async with db.session() as session:
            endpoint = await session.get(WebhookEndpoint, int(message.target))
        if endpoint is None:
            return Outcome(ok=False, error="The endpoint no longer exists.")
        if settings.is_production and not endpoint.url.startswith("https://"):
            return Outcome(ok=False, error="Endpoints must use https in production.")
        secrets = signing_secrets(endpoint, settings.secret_key, utcnow())
        return await sender.post(
            endpoint.url, secrets, message, allow_private=not settings.is_deployed, timeout=timeout, resolver=resolver
        )

    return Channel(
        kind=KIND,
        send=send,
        paused_targets=_paused,
        on_outcome=note_outcome,
        retry_base=timedelta(milliseconds=settings.outgoing_webhook_retry_base_ms),
        lease=timedelta(seconds=2 * timeout + 5),
    )


async def deliver(db: Database, settings: Settings, *, resolver: Resolver = system_resolver) -> int:
    """The job body: send every webhook that is due."""
    return await deliver_due(db, webhook_channel(db, settings, resolver=resolver))
