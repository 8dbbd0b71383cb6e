"""Admin sign-in sessions: one row per signed-in browser, listed on the admin users screen and revocable one by one.

The signed session cookie carries a random token (256 bits); the row keeps only its SHA-256. Every admin request
looks the token up (one indexed lookup, joined to the admin row it needs anyway) and is refused unless the row is
live: not revoked, seen within the idle timeout, younger than the absolute lifetime, and its admin active. The
last-seen time is moved at most once a minute, so a busy admin costs one write a minute, not one per request.

Signing out ends this session; "sign out everywhere", a password change, a deactivation and a two-factor reset end
every session of that admin (a password changed by its owner keeps the changer's own session).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, Permission, require
from payment.audit import service as audit
from payment.errors import NotFound
from payment.models import AdminSession, AdminUser, utcnow

TOUCH_EVERY = timedelta(seconds=60)
# revoked and expired rows stay listed for the audit trail's sake this long, then the periodic job deletes them
KEEP_ENDED = timedelta(days=30)

SIGNED_OUT = "signed_out"
REVOKED = "revoked"
EVERYWHERE = "signed_out_everywhere"
PASSWORD_CHANGED = "password_changed"
DEACTIVATED = "deactivated"
TWO_FACTOR_RESET = "two_factor_reset"


@dataclass(frozen=True)
class Lifetime:
    """How long a session lives without a request (idle) and at most (absolute)."""

    idle: timedelta
    absolute: timedelta

    def live_since(self, now: datetime) -> tuple[datetime, datetime]:
        """The oldest last-seen and creation times a live session can have at `now`."""
        return now - self.idle, now - self.absolute


def is_live(row: AdminSession, lifetime: Lifetime, now: datetime) -> bool:
    """The same rule as find_live's query, for rows already loaded."""
    seen_since, created_since = lifetime.live_since(now)
    return row.revoked_at is None and row.last_seen_at > seen_since and row.created_at > created_since


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def summarise_user_agent(user_agent: str) -> str:
    """ "Firefox on Linux" from a User-Agent header: what an admin recognises their browser by, kept short."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    if browser is None and "Headless" in user_agent:
        browser = "Chrome"
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    # an unknown client (a script): its first product token, printable characters only
    first = re.sub(r"[^\x20-\x7e]", "", user_agent).split(" ")[0]
    return first[:64] or "unknown"


async def open_session(
    session: AsyncSession, admin_id: int, *, ip: str | None, user_agent: str, second_factor: str
) -> tuple[str, int]:
    """Start a session for an admin who just signed in; returns the token for the cookie (never stored) and the
    session's id."""
    token = secrets.token_urlsafe(32)
    row = AdminSession(
        admin_id=admin_id,
        token_hash=hash_token(token),
        ip=ip,
        user_agent=summarise_user_agent(user_agent),
        second_factor=second_factor,
    )
    session.add(row)
    await session.flush()
    return token, row.id


@dataclass(frozen=True)
class Live:
    admin: AdminUser
    session_id: int


async def find_live(session: AsyncSession, token: str, *, lifetime: Lifetime, now: datetime) -> Live | None:
    """The admin and session a cookie's token signs in now, or None (unknown, revoked, expired, admin inactive);
    notes the request as last seen when the last note is over a minute old."""
    seen_since, created_since = lifetime.live_since(now)
    found = (
        await session.execute(
            select(AdminUser, AdminSession.id, AdminSession.last_seen_at)
            .join(AdminSession, AdminSession.admin_id == AdminUser.id)
            .where(
                AdminSession.token_hash == hash_token(token),
                AdminSession.revoked_at.is_(None),
                AdminSession.last_seen_at > seen_since,
                AdminSession.created_at > created_since,
                AdminUser.is_active,
            )
        )
    ).first()
    if found is None:
        return None
    admin, session_id, last_seen = found
    if last_seen < now - TOUCH_EVERY:
        await session.execute(update(AdminSession).where(AdminSession.id == session_id).values(last_seen_at=now))
    return Live(admin, session_id)


def _self_or_manager(actor: str, admin_id: int) -> None:
    if not (isinstance(actor, AdminActor) and actor.admin_id == admin_id):
        require(actor, Permission.MANAGE_ADMINS)


async def live_sessions(
    session: AsyncSession, admin_id: int, *, actor: str, lifetime: Lifetime, now: datetime
) -> list[AdminSession]:
    """An admin's live sessions, newest first: one's own, or anyone's with the right to manage admins."""
    _self_or_manager(actor, admin_id)
    seen_since, created_since = lifetime.live_since(now)
    rows = await session.execute(
        select(AdminSession)
        .where(
            AdminSession.admin_id == admin_id,
            AdminSession.revoked_at.is_(None),
            AdminSession.last_seen_at > seen_since,
            AdminSession.created_at > created_since,
        )
        .order_by(AdminSession.created_at.desc(), AdminSession.id.desc())
    )
    return list(rows.scalars())


async def revoke(session: AsyncSession, session_id: int, *, actor: str, ip: str | None = None) -> AdminSession:
    """Sign one session out ("Sign out this session"): one's own, or anyone's with the right to manage admins."""
    row = await session.get(AdminSession, session_id, with_for_update=True)
    if row is None:
        raise NotFound("No such session (it may have been removed after it ended).")
    _self_or_manager(actor, row.admin_id)
    if row.revoked_at is None:
        row.revoked_at, row.revoked_reason = utcnow(), REVOKED
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="admin.session_revoked",
            entity_type="admin_user",
            entity_id=row.admin_id,
            details={"session": row.id, "browser": row.user_agent, "session_ip": row.ip},
            ip=ip,
        )
    return row


async def end_all(session: AsyncSession, admin_id: int, *, reason: str, keep: int | None = None) -> int:
    """End every live session of an admin but `keep` (the caller checked the actor's right); returns how many."""
    criteria = [AdminSession.admin_id == admin_id]
    if keep is not None:
        criteria.append(AdminSession.id != keep)
    return await _end(session, criteria, reason)


async def end_by_token(session: AsyncSession, admin_id: int, token: str, *, reason: str) -> int | None:
    """End the session a cookie's token names, as its own admin leaves it (sign-out); returns its id."""
    ended = (
        await session.execute(
            update(AdminSession)
            .where(
                AdminSession.token_hash == hash_token(token),
                AdminSession.admin_id == admin_id,
                AdminSession.revoked_at.is_(None),
            )
            .values(revoked_at=func.now(), revoked_reason=reason)
            .returning(AdminSession.id)
        )
    ).scalar_one_or_none()
    return ended


async def _end(session: AsyncSession, criteria: list[ColumnElement[bool]], reason: str) -> int:
    result = await session.execute(
        update(AdminSession)
        .where(AdminSession.revoked_at.is_(None), *criteria)
        .values(revoked_at=func.now(), revoked_reason=reason)
        .returning(AdminSession.id)
    )
    return len(result.all())


async def prune(session: AsyncSession, *, lifetime: Lifetime, now: datetime) -> int:
    """Delete sessions that ended (revoked or expired) more than KEEP_ENDED ago; returns how many."""
    seen_since, created_since = lifetime.live_since(now - KEEP_ENDED)
    result = await session.execute(
        delete(AdminSession)
        .where(
            or_(
                AdminSession.revoked_at < now - KEEP_ENDED,
                AdminSession.last_seen_at < seen_since,
                AdminSession.created_at < created_since,
            )
        )
        .returning(AdminSession.id)
    )
    return len(result.all())
