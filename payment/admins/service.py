"""Admin accounts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.errors import ValidationError
from payment.models import AdminUser
from payment.security import hash_password

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise ValidationError("Enter a valid email address.", field="email")
    return email


def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > 1024:
        raise ValidationError("Name must be at most 1024 characters.", field="name")
    return name


async def find_by_email(session: AsyncSession, email: str) -> AdminUser | None:
    result = await session.execute(select(AdminUser).where(func.lower(AdminUser.email) == email.strip().lower()))
    return result.scalar_one_or_none()


@dataclass(frozen=True)
class SeedResult:
    admin: AdminUser
    created: bool


async def seed_default_admin(session: AsyncSession, *, email: str, password: str, name: str = "Admin",
                             actor: str = audit.SYSTEM) -> SeedResult:
    """Create the default admin once; an existing admin keeps its password (the seed is safe to re-run)."""
    email = normalise_email(email)
    existing = await find_by_email(session, email)
    if existing is not None:
        return SeedResult(existing, created=False)
    admin = AdminUser(email=email, name=check_name(name), password_hash=hash_password(password), role="admin")
    session.add(admin)
    await session.flush()
    await audit.record(session, actor=actor, action="admin.seeded", entity_type="admin_user", entity_id=admin.id,
                       details={"email": email})
    return SeedResult(admin, created=True)
