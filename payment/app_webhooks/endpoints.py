"""Client apps' webhook endpoints: where, which events, the signing secret (shown once, rotatable with an overlap),
on or off; and what the admin does with deliveries (replay, send a test event)."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.app_webhooks import catalogue as cat
from payment.app_webhooks.addresses import is_public
from payment.app_webhooks.capture import KIND
from payment.audit import service as audit
from payment.errors import NotFound, ValidationError
from payment.models import App, OutboxMessage, WebhookEndpoint, utcnow
from payment.outbox import service as outbox
from payment.security import decrypt_secret, encrypt_secret

URL_MAX = 2048
MAX_OVERLAP = timedelta(days=7)
DEFAULT_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class IssuedSecret:
    """A new signing secret: shown to the admin once, then only its hint."""

    endpoint: WebhookEndpoint
    secret: str


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the format Standard Webhooks libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, *, production: bool) -> str:
    """An http(s) URL without credentials; https only in production, and never an address of our own network."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if not url or len(url) > URL_MAX or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "Enter the endpoint's full URL, e.g. https://vega.example.com/hooks/billing.", field="url"
        )
    if any(c.isspace() for c in url) or parts.username or parts.password:
        raise ValidationError("The URL must not contain spaces or a user name and password.", field="url")
    if production:
        if parts.scheme != "https":
            raise ValidationError("Endpoints must use https in production.", field="url")
        host = parts.hostname.strip("[]")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if (
            host == "localhost"
            or host.endswith((".localhost", ".local", ".internal"))
            or (literal is not None and not is_public(str(literal)))
        ):
            raise ValidationError("Deliveries go to public addresses only.", field="url")
    return url


def check_event_types(event_types: list[str]) -> list[str]:
    chosen = [t for t in cat.EVENT_TYPES if t in set(event_types)]
    unknown = set(event_types) - set(cat.EVENT_TYPES)
    if unknown:
        raise ValidationError(f"Unknown event type {sorted(unknown)[0]}.", field="event_types")
    if not chosen:
        raise ValidationError("Choose at least one event type.", field="event_types")
    return chosen


def check_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > 255 or any(ord(c) < 32 for c in description):
        raise ValidationError("The description is at most 255 characters on one line.", field="description")
    return description


def _hint(secret: str) -> str:
    return f"{secret[:10]}…{secret[-4:]}"


async def all_with_apps(session: AsyncSession) -> list[tuple[WebhookEndpoint, App]]:
    """Every endpoint with its app, by app slug, as the admin lists them."""
    rows = await session.execute(
        select(WebhookEndpoint, App).join(App, App.id == WebhookEndpoint.app_id).order_by(App.slug, WebhookEndpoint.id)
    )
    return [(endpoint, app) for endpoint, app in rows]


async def get(session: AsyncSession, endpoint_id: int, *, for_update: bool = False) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=for_update)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


async def list_for_app(session: AsyncSession, app_id: int) -> list[WebhookEndpoint]:
    return list(
        (
            await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.app_id == app_id).order_by(WebhookEndpoint.id)
            )
        ).all()
    )


async def create(
    session: AsyncSession,
    *,
    app_id: int,
    url: str,
    event_types: list[str],
    description: str = "",
    production: bool,
    secret_key: str,
    actor: str,
) -> IssuedSecret:
    """Add an endpoint to an app, enabled, with a new signing secret (returned once)."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    if await session.get(App, app_id) is None:
        raise NotFound("No such app.")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        app_id=app_id,
        url=check_url(url, production=production),
        event_types=check_event_types(event_types),
        description=check_description(description),
        secret_encrypted=encrypt_secret(secret, secret_key),
        secret_hint=_hint(secret),
    )
    session.add(endpoint)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint.created",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"app_id": app_id, "url": endpoint.url, "event_types": endpoint.event_types},
    )
    return IssuedSecret(endpoint, secret)


async def update(
    session: AsyncSession,
    endpoint_id: int,
    *,
    url: str,
    event_types: list[str],
    description: str,
    production: bool,
    actor: str,
) -> WebhookEndpoint:
    """Change where an endpoint is and which events it wants (messages already queued keep going)."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    endpoint = await get(session, endpoint_id, for_update=True)
    endpoint.url = check_url(url, production=production)
    endpoint.event_types = check_event_types(event_types)
    endpoint.description = check_description(description)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint.updated",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return endpoint


async def set_enabled(session: AsyncSession, endpoint_id: int, enabled: bool, *, actor: str) -> WebhookEndpoint:
    """Turn deliveries to an endpoint on or off; turning it on clears why it was disabled and restarts its
    failure clock (messages kept while it was off are sent, in order)."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    endpoint = await get(session, endpoint_id, for_update=True)
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
    else:
        endpoint.disabled_at, endpoint.disabled_reason = utcnow(), "Disabled by an admin."
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint." + ("enabled" if enabled else "disabled"),
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
    )
    return endpoint


async def rotate_secret(
    session: AsyncSession,
    endpoint_id: int,
    *,
    overlap: timedelta,
    secret_key: str,
    actor: str,
    now: datetime | None = None,
) -> IssuedSecret:
    """Issue a new signing secret; until the overlap ends, deliveries carry a signature with each of the two so the
    app can switch its verifier at its own pace."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError("The overlap is between 0 and 168 hours.", field="overlap_hours")
    endpoint = await get(session, endpoint_id, for_update=True)
    now = now or utcnow()
    secret = new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted if overlap else None
    endpoint.previous_secret_expires_at = now + overlap if overlap else None
    endpoint.secret_encrypted, endpoint.secret_hint = encrypt_secret(secret, secret_key), _hint(secret)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint.secret_rotated",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"overlap_seconds": int(overlap.total_seconds()), "hint": endpoint.secret_hint},
    )
    return IssuedSecret(endpoint, secret)


def signing_secrets(endpoint: WebhookEndpoint, secret_key: str, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during a rotation's overlap."""
    found = [decrypt_secret(endpoint.secret_encrypted, secret_key)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        found.append(decrypt_secret(endpoint.previous_secret_encrypted, secret_key))
    return [s for s in found if s]


async def send_test(session: AsyncSession, endpoint_id: int, *, actor: str) -> str:
    """Queue a `webhook.test` event for one endpoint (it waits for nothing and nothing waits for it); returns its
    message id."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    endpoint = await get(session, endpoint_id)
    message_id = outbox.new_message_id()
    payload = cat.envelope(
        cat.TEST, utcnow(), {"message": "A test event from Aquoris Payment.", "endpointId": endpoint.id}
    )
    await outbox.add(
        session,
        kind=KIND,
        target=str(endpoint.id),
        dedupe_key=f"test:{message_id}",
        event_type=cat.TEST,
        ordering_key=f"test:{message_id}",
        position=1,
        payload=payload,
        message_id=message_id,
    )
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint.test_sent",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"message_id": message_id},
    )
    return message_id


async def replay(
    session: AsyncSession,
    endpoint_id: int,
    *,
    delivery_id: int | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    actor: str,
) -> int:
    """Send one delivery again, or every delivery of the endpoint created in [from, to), with the same ids and
    in their original order; returns how many."""
    require(actor, Permission.MANAGE_WEBHOOK_ENDPOINTS)
    endpoint = await get(session, endpoint_id)
    if delivery_id is None and (created_from is None or created_to is None or created_from >= created_to):
        raise ValidationError("Give a time range whose start is before its end.", field="created_from")
    count = await outbox.requeue(
        session,
        kind=KIND,
        target=str(endpoint.id),
        message_ids=[delivery_id] if delivery_id is not None else None,
        created_from=created_from,
        created_to=created_to,
    )
    details: dict[str, Any] = {"count": count}
    if delivery_id is not None:
        details["delivery_id"] = delivery_id
    else:
        details.update(
            {
                "from": created_from.isoformat() if created_from else None,
                "to": created_to.isoformat() if created_to else None,
            }
        )
    await audit.record(
        session,
        actor=actor,
        action="webhook_endpoint.replayed",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details=details,
    )
    return count


async def deliveries(
    session: AsyncSession, endpoint_id: int, *, limit: int = 50, before_id: int | None = None
) -> list[OutboxMessage]:
    """The endpoint's delivery log, newest first."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.kind == KIND, OutboxMessage.target == str(endpoint_id))
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(OutboxMessage.id < before_id)
    return list((await session.scalars(query)).all())
