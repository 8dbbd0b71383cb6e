"""One-time set-password links: a new admin (or one who forgot) chooses their own password; nobody else knows it.

The link carries a 256-bit token; only its SHA-256 is stored, with an expiry. Using it sets the password and
forgets the token, so a link works once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.admins.service import get_admin
from payment.audit import service as audit
from payment.errors import NotFound
from payment.models import AdminUser, utcnow
from payment.security import digest, hash_password, new_token

LINK_LIFETIME = timedelta(hours=48)
EXPIRED = "This set-password link has expired or was already used. Ask an owner for a new one."


async def issue(session: AsyncSession, admin_id: int, *, actor: str, ip: str | None = None) -> str:
    """A new link token for the admin (replacing an earlier one), valid for 48 hours; returned once, kept hashed."""
    require(actor, Permission.MANAGE_ADMINS)
    admin = await get_admin(session, admin_id)
    token = new_token()
    admin.password_token_hash = digest(token)
    admin.password_token_expires_at = utcnow() + LINK_LIFETIME
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.password_link_issued",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email},
        ip=ip,
    )
    return token


async def admin_for(session: AsyncSession, token: str, *, lock: bool = False) -> AdminUser:
    """The active admin a valid, unexpired link belongs to, or NotFound."""
    query = select(AdminUser).where(
        AdminUser.password_token_hash == digest(token),
        AdminUser.password_token_expires_at > utcnow(),
        AdminUser.is_active,
    )
    admin = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if admin is None:
        raise NotFound(EXPIRED)
    return admin


async def set_password(session: AsyncSession, token: str, password: str, *, ip: str | None = None) -> AdminUser:
    """Set the password of the link's admin (8 to 72 bytes) and use the link up."""
    admin = await admin_for(session, token, lock=True)
    admin.password_hash = hash_password(password)
    admin.password_token_hash = admin.password_token_expires_at = None
    await session.flush()
    await audit.record(
        session,
        actor=audit.admin_actor(admin.id),
        action="admin.password_set_by_link",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email},
        ip=ip,
    )
    return admin
