"""One-time form nonces: a double-submitted admin form acts once and the repeat shows the first outcome."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.errors import ValidationError
from payment.models import FormSubmission

NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_nonce() -> str:
    """A nonce for one rendering of a form (hidden field)."""
    return secrets.token_urlsafe(24)


def check_nonce(nonce: str | None) -> str:
    """A nonce looks like one we issued (16-64 URL-safe characters), or the form is refused."""
    nonce = (nonce or "").strip()
    if not NONCE_RE.match(nonce):
        raise ValidationError("This form has expired or was tampered with; open it again.", field="nonce")
    return nonce


async def claim(session: AsyncSession, nonce: str, *, action: str, actor: str) -> dict[str, Any] | None:
    """Claim a form nonce for this transaction; when it was already used, return that submission's outcome.

    The insert waits on a concurrent transaction holding the same nonce, so of two simultaneous clicks one acts and
    the other reads what the first did (or acts itself if the first rolled back).
    """
    nonce = check_nonce(nonce)
    inserted = (
        await session.execute(
            insert(FormSubmission)
            .values(nonce=nonce, action=action, actor=actor, outcome={})
            .on_conflict_do_nothing(index_elements=["nonce"])
            .returning(FormSubmission.nonce)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        return None
    outcome = (await session.execute(select(FormSubmission.outcome).where(FormSubmission.nonce == nonce))).scalar_one()
    return dict(outcome) or {"level": "info", "message": "This form was already submitted."}


async def settle(session: AsyncSession, nonce: str, outcome: dict[str, Any]) -> None:
    """Store what the claimed submission did, for a repeat of it to show."""
    row = await session.get(FormSubmission, nonce)
    if row is not None:
        row.outcome = outcome
        await session.flush()


async def release(session: AsyncSession, nonce: str) -> None:
    """Give back a claimed nonce whose action was refused before it did anything (it was never settled), so the
    same form can be sent again."""
    await session.execute(delete(FormSubmission).where(FormSubmission.nonce == nonce, FormSubmission.outcome == {}))


async def purge(session: AsyncSession, *, older_than: datetime) -> int:
    """Forget form nonces claimed before `older_than` (a form that old is no longer open anywhere)."""
    result = await session.execute(delete(FormSubmission).where(FormSubmission.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
