"""Billing sessions: an unguessable single-purpose token, stored as its SHA-256 only, bound to app and customer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from payment.audit import service as audit
from payment.models import App, BillingSession, Customer, utcnow
from payment.security import digest, new_token

# secrets.token_urlsafe(32) is 43 characters; anything far from that shape is not one of ours.
_TOKEN_MAX_LENGTH = 64


@dataclass(frozen=True)
class CreatedSession:
    id: uuid.UUID
    token: str
    url: str
    expires_at: datetime


def billing_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/billing/{token}"


async def create(
    session: AsyncSession,
    *,
    app: App,
    customer: Customer,
    locale: str | None,
    ttl_seconds: int,
    base_url: str,
    actor: str,
    now: datetime | None = None,
) -> CreatedSession:
    """Open a billing session for this customer in this app, valid for `ttl_seconds`; only the token's hash is kept."""
    token = new_token()
    expires_at = (now or utcnow()) + timedelta(seconds=ttl_seconds)
    row = BillingSession(
        id=uuid.uuid4(),
        token_hash=digest(token),
        app_id=app.id,
        customer_id=customer.id,
        locale=locale,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="billing_session.created",
        entity_type="billing_session",
        entity_id=row.id,
        details={"app": app.slug, "customer_id": customer.id, "expires_at": expires_at.isoformat()},
    )
    return CreatedSession(id=row.id, token=token, url=billing_url(base_url, token), expires_at=expires_at)


@dataclass(frozen=True)
class Resolved:
    billing_session: BillingSession
    expired: bool


async def resolve(session: AsyncSession, token: str, *, now: datetime | None = None) -> Resolved | None:
    """The billing session behind a token (with its app and customer), or None when the token is unknown or its app
    was deactivated (a deactivated app's links stop working at once, like its API key)."""
    if not token or len(token) > _TOKEN_MAX_LENGTH:
        return None
    row = (
        await session.execute(
            select(BillingSession)
            .where(BillingSession.token_hash == digest(token))
            .options(joinedload(BillingSession.app), joinedload(BillingSession.customer))
        )
    ).scalar_one_or_none()
    if row is None or not row.app.is_active:
        return None
    return Resolved(row, expired=row.expires_at <= (now or utcnow()))


async def purge_expired(session: AsyncSession, *, now: datetime, actor: str = audit.SYSTEM) -> int:
    """Delete billing sessions whose expiry is before `now`; returns how many went."""
    result = await session.execute(delete(BillingSession).where(BillingSession.expires_at < now))
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        await audit.record(
            session,
            actor=actor,
            action="billing_session.purged",
            entity_type="billing_session",
            details={"count": count, "expired_before": now.isoformat()},
        )
    return count
