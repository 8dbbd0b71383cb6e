"""Delivering the outbox: claim the head of each queue, send outside any transaction, record the outcome.

At least once, never lost: a claimed message carries a lease; a worker that dies mid-send leaves it `sending`,
and once the lease runs out the next run sends it again with the same message id. In order: a message is only
claimed when no earlier message of its (kind, target, ordering_key) queue is still pending or being sent, so a
later message for a user waits while an earlier one is retried. Retries back off exponentially until the
message is `max_age` old; then it is `failed` (kept, visible, replayable) and the queue moves on.

Never twice across a crash after the hand-off: a channel whose last step cannot be taken back (SMTP DATA) marks the
attempt `handed_off_at` in its own commit just before that step (`mark_handed_off`). A message whose lease ran out
after that mark may have arrived: it becomes `in_doubt` (kept, shown, sent again only by an admin), never resent
by itself; one whose worker died before the mark is sent again as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from payment.db import Database
from payment.models import OutboxMessage, utcnow

MAX_DELAY = timedelta(hours=8)
MAX_AGE = timedelta(days=3)
CLAIM_BATCH = 20
ERROR_EXCERPT = 500
IN_DOUBT_ERROR = (
    "The worker stopped after handing this message over, before the answer was recorded: it may have arrived, "
    "so it is not sent again by itself. Send it again if the recipient did not get it."
)


@dataclass(frozen=True)
class Claimed:
    """What a sender needs of a message, read in the claiming transaction."""

    id: int
    kind: str
    target: str
    message_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (a mailbox that does not exist): failed at once
    in_doubt: bool = False  # the hand-off began and no answer came (connection lost in DATA): may have arrived


@dataclass(frozen=True)
class Channel:
    """One kind of message: how to send it, which targets are paused, and what to note about a target's health."""

    kind: str
    send: Callable[[Claimed], Awaitable[Outcome]]
    paused_targets: Callable[[AsyncSession], Awaitable[set[str]]]
    on_outcome: Callable[[AsyncSession, str, Outcome, datetime], Awaitable[None]]
    retry_base: timedelta = timedelta(seconds=5)
    lease: timedelta = timedelta(seconds=60)


def retry_delay(attempts: int, base: timedelta) -> timedelta:
    """base, 2 x base, 4 x base ... after the 1st, 2nd, 3rd failed attempt; never more than 8 hours."""
    return min(base * (1 << min(max(attempts - 1, 0), 30)), MAX_DELAY)


async def mark_in_doubt(session: AsyncSession, channel: Channel, *, now: datetime) -> int:
    """Messages whose worker died after the hand-off began (lease run out, `handed_off_at` set) are `in_doubt`."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.kind == channel.kind,
            OutboxMessage.status == "sending",
            OutboxMessage.lease_until < now,
            OutboxMessage.handed_off_at.is_not(None),
        )
        .values(status="in_doubt", lease_until=None, last_error=IN_DOUBT_ERROR)
        .returning(OutboxMessage.id)
    )
    return len(result.all())


async def mark_handed_off(db: Database, message: Claimed) -> bool:
    """Commit that this attempt is about to hand the message over for good; False when the attempt is no longer
    the message's current one (its lease ran out and it was claimed again): then it must not be handed over."""
    async with db.transaction() as session:
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.status == "sending",
                OutboxMessage.attempts == message.attempts,
            )
            .values(handed_off_at=utcnow())
            .returning(OutboxMessage.id)
        )
        return result.first() is not None


async def claim(session: AsyncSession, channel: Channel, *, now: datetime, limit: int = CLAIM_BATCH) -> list[Claimed]:
    """Take the due heads of queues (skipping ones another worker holds) and lease them for one attempt; first put
    aside as `in_doubt` the leased messages whose worker died after their hand-off began."""
    await mark_in_doubt(session, channel, now=now)
    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        earlier.kind == OutboxMessage.kind,
        earlier.target == OutboxMessage.target,
        earlier.ordering_key == OutboxMessage.ordering_key,
        earlier.position < OutboxMessage.position,
        earlier.status.in_(("pending", "sending")),
    )
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.kind == channel.kind,
            or_(
                and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
                and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
            ),
            ~blocked,
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    paused = await channel.paused_targets(session)
    if paused:
        query = query.where(OutboxMessage.target.not_in(paused))
    rows = (await session.scalars(query)).all()
    claimed: list[Claimed] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        queue = (row.target, row.ordering_key)
        if queue in seen:  # two heads of one queue cannot both be due; keep the rule anyway
            continue
        seen.add(queue)
        row.status, row.lease_until, row.last_attempt_at = "sending", now + channel.lease, now
        row.handed_off_at = None
        row.attempts += 1
        claimed.append(
            Claimed(
                id=row.id,
                kind=row.kind,
                target=row.target,
                message_id=row.message_id,
                event_type=row.event_type,
                payload=row.payload,
                attempts=row.attempts,
                created_at=row.created_at,
            )
        )
    await session.flush()
    return claimed


async def record(session: AsyncSession, channel: Channel, message: Claimed, outcome: Outcome, *, now: datetime) -> None:
    """Note an attempt's outcome, unless the message was claimed again meanwhile (its lease ran out)."""
    row = await session.get(OutboxMessage, message.id, with_for_update=True)
    if row is None or row.status != "sending" or row.attempts != message.attempts:
        return
    row.lease_until = None
    row.last_status_code, row.last_duration_ms = outcome.status_code, outcome.duration_ms
    row.last_error = outcome.error[:ERROR_EXCERPT] if outcome.error else None
    if outcome.ok:
        row.status, row.delivered_at = "delivered", now
    elif outcome.in_doubt:
        row.status = "in_doubt"
    else:
        next_at = now + retry_delay(row.attempts, channel.retry_base)
        if outcome.permanent or next_at - row.created_at > MAX_AGE:
            row.status = "failed"
        else:
            row.status, row.next_attempt_at = "pending", next_at
    await channel.on_outcome(session, message.target, outcome, now)


async def _send(channel: Channel, message: Claimed) -> Outcome:
    try:
        return await channel.send(message)
    except Exception as exc:  # a sender bug must not leave the batch unrecorded; the lease would resend it anyway
        return Outcome(ok=False, error=f"Unexpected error ({type(exc).__name__}).")


async def deliver_due(
    db: Database, channel: Channel, *, budget_seconds: float = 50.0, clock: Callable[[], datetime] = utcnow
) -> int:
    """Send what is due, queue heads in parallel, until nothing is due or the time budget is spent; returns how
    many attempts were made. Safe to run in several workers at once."""
    started, attempts = time.monotonic(), 0
    while time.monotonic() - started < budget_seconds:
        async with db.transaction() as session:
            batch = await claim(session, channel, now=clock())
        if not batch:
            break
        # the transaction is closed: no row lock is held while the targets are called
        outcomes = await asyncio.gather(*(_send(channel, message) for message in batch))
        async with db.transaction() as session:
            for message, outcome in zip(batch, outcomes, strict=True):
                await record(session, channel, message, outcome, now=clock())
        attempts += len(batch)
    return attempts
