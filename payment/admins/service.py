"""Admin accounts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins import sessions
from payment.admins.permissions import AdminActor, Permission, Role, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import AdminUser, utcnow
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


async def seed_default_admin(
    session: AsyncSession, *, email: str, password: str, name: str = "Admin", actor: str = audit.SYSTEM
) -> SeedResult:
    """Create the default admin once; an existing admin keeps its password (the seed is safe to re-run)."""
    email = normalise_email(email)
    existing = await find_by_email(session, email)
    if existing is not None:
        return SeedResult(existing, created=False)
    admin = AdminUser(email=email, name=check_name(name), password_hash=hash_password(password), role=Role.OWNER)
    session.add(admin)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.seeded",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": email},
    )
    return SeedResult(admin, created=True)


async def get_admin(session: AsyncSession, admin_id: int) -> AdminUser:
    """The admin with this id, or NotFound."""
    admin = await session.get(AdminUser, admin_id)
    if admin is None:
        raise NotFound("No such admin.")
    return admin


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError("Choose one of the roles: owner, finance, support or viewer.", field="role") from None


# no bcrypt hash matches it: an admin created without a password cannot sign in until they set one by link
NO_PASSWORD = "!"


async def create_admin(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password: str | None,
    actor: str,
    role: str = Role.OWNER,
    ip: str | None = None,
) -> AdminUser:
    """Add an admin account with a role and a bcrypt-hashed password (or none yet: they set it through a one-time
    link); emails are unique regardless of case."""
    require(actor, Permission.MANAGE_ADMINS)
    email, name, checked_role = normalise_email(email), check_name(name), check_role(role)
    if await find_by_email(session, email) is not None:
        raise Conflict(f"An admin with email {email} already exists.", field="email")
    admin = AdminUser(
        email=email,
        name=name,
        role=checked_role,
        password_hash=NO_PASSWORD if password is None else hash_password(password),
    )
    session.add(admin)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.created",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": email, "name": name, "role": checked_role},
        ip=ip,
    )
    return admin


async def set_active(
    session: AsyncSession, admin_id: int, active: bool, *, acting_admin_id: int, actor: str, ip: str | None = None
) -> AdminUser:
    """Deactivate (or reactivate) an admin; nobody can deactivate themselves, and one active owner remains."""
    require(actor, Permission.MANAGE_ADMINS)
    admin = await get_admin(session, admin_id)
    if not active and admin.id == acting_admin_id:
        raise ValidationError("You cannot deactivate your own account.", field="is_active")
    if not active and admin.is_active and admin.role == Role.OWNER:
        await _keep_an_owner(session, admin)
    if admin.is_active != active:
        admin.is_active = active
        if not active:
            await sessions.end_all(session, admin.id, reason=sessions.DEACTIVATED)  # reactivating brings none back
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="admin.activated" if active else "admin.deactivated",
            entity_type="admin_user",
            entity_id=admin.id,
            details={"email": admin.email},
            ip=ip,
        )
    return admin


async def _keep_an_owner(session: AsyncSession, leaving: AdminUser) -> None:
    """Refuse when `leaving` is the last active owner. The active owners are locked so two owners demoting each
    other at the same moment cannot both succeed."""
    owners = (
        (
            await session.execute(
                select(AdminUser.id)
                .where(AdminUser.role == Role.OWNER, AdminUser.is_active)
                .order_by(AdminUser.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    if [owner for owner in owners if owner != leaving.id] == []:
        raise Conflict("At least one active owner must remain: make another admin an owner first.", field="role")


async def set_role(session: AsyncSession, admin_id: int, role: str, *, actor: str, ip: str | None = None) -> AdminUser:
    """Give an admin another role; the last active owner keeps theirs."""
    require(actor, Permission.MANAGE_ADMINS)
    new_role = check_role(role)
    admin = await get_admin(session, admin_id)
    if admin.role == new_role:
        return admin
    if admin.role == Role.OWNER and admin.is_active:
        await _keep_an_owner(session, admin)
    previous, admin.role = admin.role, new_role
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.role_changed",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email, "from": previous, "to": new_role},
        ip=ip,
    )
    return admin


async def change_password(
    session: AsyncSession,
    admin_id: int,
    password: str,
    *,
    actor: str,
    ip: str | None = None,
    keep_session: int | None = None,
) -> AdminUser:
    """Replace an admin's password (8 to 72 bytes, bcrypt): one's own, or anyone's with the right to manage admins;
    ends every session of that admin but `keep_session` (the changer's own browser); the audit row never holds the
    password."""
    if not (isinstance(actor, AdminActor) and actor.admin_id == admin_id):
        require(actor, Permission.MANAGE_ADMINS)
    admin = await get_admin(session, admin_id)
    admin.password_hash = hash_password(password)
    await sessions.end_all(session, admin.id, reason=sessions.PASSWORD_CHANGED, keep=keep_session)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.password_changed",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email},
        ip=ip,
    )
    return admin


SIGN_IN_METHODS = {"password": "none", "totp": "totp", "backup": "backup"}


async def record_sign_in(
    session: AsyncSession, admin: AdminUser, *, ip: str | None, user_agent: str = "", method: str = "password"
) -> str:
    """Note a successful sign-in (and its second factor: "totp" or "backup") on the account and in the audit log,
    and start its session; returns the session token for the cookie."""
    admin.last_login_at = utcnow()
    token, session_id = await sessions.open_session(
        session, admin.id, ip=ip, user_agent=user_agent, second_factor=SIGN_IN_METHODS[method]
    )
    await audit.record(
        session,
        actor=audit.admin_actor(admin.id),
        action="admin.signed_in",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email, "method": method, "session": session_id},
        ip=ip,
    )
    return token


async def record_failed_sign_in(session: AsyncSession, email: str, *, reason: str, ip: str | None) -> None:
    """Note a refused sign-in (bad credentials, inactive account or rate limit); the password is never kept."""
    await audit.record(
        session,
        actor="anonymous",
        action="admin.sign_in_failed",
        entity_type="admin_user",
        details={"email": email.strip()[:320], "reason": reason},
        ip=ip,
    )


async def record_sign_out(session: AsyncSession, admin_id: int, token: str | None, *, ip: str | None) -> None:
    """Sign-out ends this browser's session (a copy of its cookie included) and is noted in the audit log; the
    admin's other browsers stay signed in ("Sign out everywhere" ends them)."""
    ended = None if token is None else await sessions.end_by_token(session, admin_id, token, reason=sessions.SIGNED_OUT)
    await audit.record(
        session,
        actor=audit.admin_actor(admin_id),
        action="admin.signed_out",
        entity_type="admin_user",
        entity_id=admin_id,
        details={} if ended is None else {"session": ended},
        ip=ip,
    )


async def end_sessions(session: AsyncSession, admin_id: int, *, actor: str, ip: str | None = None) -> AdminUser:
    """End every session of an admin at once ("sign out everywhere"), e.g. after a lost laptop: one's own, or
    anyone's with the right to manage admins."""
    if not (isinstance(actor, AdminActor) and actor.admin_id == admin_id):
        require(actor, Permission.MANAGE_ADMINS)
    admin = await get_admin(session, admin_id)
    ended = await sessions.end_all(session, admin.id, reason=sessions.EVERYWHERE)
    await audit.record(
        session,
        actor=actor,
        action="admin.sessions_ended",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email, "sessions": ended},
        ip=ip,
    )
    return admin
