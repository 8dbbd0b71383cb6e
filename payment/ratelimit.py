"""Fixed-window rate limits kept in PostgreSQL, so every app process sees the same attempts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import RateLimitHit

# Rows older than this are garbage for every limit we keep (the longest window is a minute).
RETENTION_SECONDS = 3600
# One call in this many also sweeps other keys' old rows, so the table stays small without a job.
SWEEP_ONE_IN = 50


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    attempts: int
    retry_after_seconds: int


async def hit(session: AsyncSession, key: str, *, limit: int, window_seconds: int = 60) -> Verdict:
    """Count one attempt for `key` unless `limit` attempts were already made within the window."""
    # Serialise attempts on the same key across processes: two at once must not both see "one left".
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ratelimit:{key}"})
    since = func.now() - text(f"interval '{int(window_seconds)} seconds'")
    await session.execute(delete(RateLimitHit).where(RateLimitHit.key == key, RateLimitHit.at < since))
    if secrets.randbelow(SWEEP_ONE_IN) == 0:
        await session.execute(
            delete(RateLimitHit).where(RateLimitHit.at < func.now() - text(f"interval '{RETENTION_SECONDS} seconds'"))
        )
    row = (
        await session.execute(
            select(func.count(), func.min(RateLimitHit.at), func.now()).where(
                RateLimitHit.key == key, RateLimitHit.at >= since
            )
        )
    ).one()
    attempts, oldest, now = int(row[0]), row[1], row[2]
    if attempts >= limit:
        wait = window_seconds - int((now - oldest).total_seconds()) if oldest is not None else window_seconds
        return Verdict(allowed=False, attempts=attempts, retry_after_seconds=max(1, wait))
    session.add(RateLimitHit(key=key))
    await session.flush()
    return Verdict(allowed=True, attempts=attempts + 1, retry_after_seconds=0)
