"""Two-factor sign-in for admins: TOTP (RFC 6238, 30-second steps, 6 digits) with ten single-use backup codes.

The secret is kept encrypted with SECRET_KEY and is in force once confirmed with a first code. A code is accepted
for the step before, the current step and the step after (clock drift), and only for a step later than the last
one accepted: a code seen once (over a shoulder, in a log) cannot be used again. The admin row is locked while a
code is checked, so two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins import sessions
from payment.admins.permissions import AdminActor, Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import AdminBackupCode, AdminUser, utcnow
from payment.security import decrypt_secret, encrypt_secret

ISSUER = "Aquoris Payment"
BACKUP_CODES = 10
STEP_SECONDS = 30
DRIFT_STEPS = 1
BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed from paper


def _hash_code(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def new_backup_code() -> str:
    raw = "".join(secrets.choice(BACKUP_ALPHABET) for _ in range(10))  # ~49 bits
    return f"{raw[:5]}-{raw[5:]}"


def qr_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code, drawn here (no image service sees the secret)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
    return out.getvalue().decode()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _self_only(actor: str, admin_id: int) -> None:
    if not (isinstance(actor, AdminActor) and actor.admin_id == admin_id):
        raise ValidationError("Only the admin themself can set up their two-factor sign-in.")


async def _locked(session: AsyncSession, admin_id: int) -> AdminUser:
    admin = await session.get(AdminUser, admin_id, with_for_update=True, populate_existing=True)
    if admin is None:
        raise NotFound("No such admin.")
    return admin


async def start_enrolment(session: AsyncSession, admin_id: int, *, secret_key: str, actor: str) -> str:
    """Give the admin a new, not yet confirmed TOTP secret (replacing an earlier unconfirmed one); returns it."""
    _self_only(actor, admin_id)
    admin = await _locked(session, admin_id)
    if admin.has_two_factor:
        raise Conflict("Two-factor sign-in is already on for this account.")
    secret = pyotp.random_base32()
    admin.totp_secret_encrypted = encrypt_secret(secret, secret_key)
    await session.flush()
    return secret


def pending_secret(admin: AdminUser, secret_key: str) -> str | None:
    """The enrolment secret not yet confirmed (None once confirmed or when there is none)."""
    if admin.has_two_factor or admin.totp_secret_encrypted is None:
        return None
    return decrypt_secret(admin.totp_secret_encrypted, secret_key)


def _matching_step(secret: str, code: str, after: int | None, now: float) -> int | None:
    """The time step whose code this is, within the drift window and later than `after`; constant-time compare."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


async def confirm_enrolment(
    session: AsyncSession,
    admin_id: int,
    code: str,
    *,
    secret_key: str,
    actor: str,
    ip: str | None = None,
    now: float | None = None,
) -> list[str]:
    """Turn two-factor on with a first valid code; returns the ten backup codes (shown once, kept hashed)."""
    _self_only(actor, admin_id)
    admin = await _locked(session, admin_id)
    secret = pending_secret(admin, secret_key)
    if secret is None:
        raise Conflict("Start the two-factor set-up again: there is no code to confirm.")
    step = _matching_step(secret, normalise_code(code), None, time.time() if now is None else now)
    if step is None:
        raise ValidationError("That code does not match. Enter the 6 digits your app shows now.", field="code")
    admin.totp_enabled_at, admin.totp_last_step = utcnow(), step
    codes = [new_backup_code() for _ in range(BACKUP_CODES)]
    session.add_all(AdminBackupCode(admin_id=admin.id, code_hash=_hash_code(normalise_code(c))) for c in codes)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.two_factor_enabled",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email},
        ip=ip,
    )
    return codes


async def check_code(
    session: AsyncSession, admin_id: int, code: str, *, secret_key: str, now: float | None = None
) -> str | None:
    """Accept a TOTP code (once per step) or an unused backup code (then used up); returns "totp", "backup" or
    None when refused."""
    admin = await _locked(session, admin_id)
    if not admin.has_two_factor or admin.totp_secret_encrypted is None:
        return None
    code = normalise_code(code)
    secret = decrypt_secret(admin.totp_secret_encrypted, secret_key)
    if secret is not None:
        step = _matching_step(secret, code, admin.totp_last_step, time.time() if now is None else now)
        if step is not None:
            admin.totp_last_step = step
            await session.flush()
            return "totp"
    if len(code) == 10:
        used = await session.execute(
            update(AdminBackupCode)
            .where(
                AdminBackupCode.admin_id == admin.id,
                AdminBackupCode.code_hash == _hash_code(code),
                AdminBackupCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .returning(AdminBackupCode.id)
        )
        if used.first() is not None:
            return "backup"
    return None


async def backup_codes_left(session: AsyncSession, admin_id: int) -> int:
    rows = await session.execute(
        select(AdminBackupCode.id).where(AdminBackupCode.admin_id == admin_id, AdminBackupCode.used_at.is_(None))
    )
    return len(rows.all())


async def reset(session: AsyncSession, admin_id: int, *, actor: str, ip: str | None = None) -> AdminUser:
    """Turn an admin's two-factor off (lost phone): every session of theirs ends, they sign in with the password
    and enrol again."""
    require(actor, Permission.MANAGE_ADMINS)
    admin = await _locked(session, admin_id)
    admin.totp_secret_encrypted = admin.totp_enabled_at = admin.totp_last_step = None
    await session.execute(delete(AdminBackupCode).where(AdminBackupCode.admin_id == admin.id))
    await sessions.end_all(session, admin.id, reason=sessions.TWO_FACTOR_RESET)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="admin.two_factor_reset",
        entity_type="admin_user",
        entity_id=admin.id,
        details={"email": admin.email},
        ip=ip,
    )
    return admin
