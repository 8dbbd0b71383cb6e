"""The billing session rules the API and the purge job share: create, resolve, purge_expired."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.billing_sessions import service as billing_sessions
from payment.models import AuditLog, BillingSession, utcnow
from tests.support import factories


async def test_token_resolves_until_it_expires(db: AsyncSession) -> None:
    app, _ = await factories.create_app(db)
    customer = await factories.create_customer(db)
    now = utcnow()
    created = await billing_sessions.create(
        db,
        app=app,
        customer=customer,
        locale="th",
        ttl_seconds=600,
        base_url="https://pay.example.com",
        actor="app:test",
        now=now,
    )
    assert created.url == f"https://pay.example.com/billing/{created.token}"
    live = await billing_sessions.resolve(db, created.token, now=now + timedelta(seconds=599))
    assert live is not None and not live.expired
    assert (live.billing_session.app.id, live.billing_session.customer.id) == (app.id, customer.id)
    lapsed = await billing_sessions.resolve(db, created.token, now=now + timedelta(seconds=600))
    assert lapsed is not None and lapsed.expired
    assert await billing_sessions.resolve(db, created.token[:-1] + "x") is None
    assert await billing_sessions.resolve(db, "") is None


async def test_purge_expired_deletes_only_expired_sessions_and_audits(db: AsyncSession) -> None:
    app, _ = await factories.create_app(db)
    customer = await factories.create_customer(db)
    now = utcnow()
    old = await billing_sessions.create(
        db,
        app=app,
        customer=customer,
        locale=None,
        ttl_seconds=60,
        base_url="http://x",
        actor="test",
        now=now - timedelta(hours=2),
    )
    fresh = await billing_sessions.create(
        db, app=app, customer=customer, locale=None, ttl_seconds=3600, base_url="http://x", actor="test", now=now
    )
    assert await billing_sessions.purge_expired(db, now=now) == 1
    assert await billing_sessions.resolve(db, old.token) is None
    assert await billing_sessions.resolve(db, fresh.token) is not None
    assert await billing_sessions.purge_expired(db, now=now) == 0
    purged = await db.scalar(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == "billing_session.purged")
    )
    assert purged == 1
    remaining = await db.scalar(select(func.count()).select_from(BillingSession))
    assert remaining == 1
