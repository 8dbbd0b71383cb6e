"""db:seed: idempotent upserts of the default admin; never resets an existing admin's password."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import AdminUser, AuditLog
from payment.security import verify_password
from payment.seed import seed_admin
from tests.support.db import settings_for


async def test_seed_twice_creates_one_admin_and_keeps_the_password(db: AsyncSession, database_url: str) -> None:
    first = settings_for(database_url, admin_email="Owner@Example.com", admin_password="first-password")
    created = await seed_admin(db, first)
    assert created.created and created.admin.email == "owner@example.com"

    second = settings_for(database_url, admin_email="owner@example.com", admin_password="other-password")
    again = await seed_admin(db, second)
    assert not again.created and again.admin.id == created.admin.id

    admins = (await db.execute(select(AdminUser))).scalars().all()
    assert len(admins) == 1
    assert verify_password("first-password", admins[0].password_hash)
    assert not verify_password("other-password", admins[0].password_hash)
    seeded = await db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "admin.seeded"))
    assert seeded == 1
