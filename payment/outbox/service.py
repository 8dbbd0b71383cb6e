"""Writing to the outbox (in the caller's transaction), numbering, and putting messages back in line."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import OutboxCounter, OutboxMessage, utcnow


def new_message_id() -> str:
    """A unique message id (Standard Webhooks' `webhook-id`): the same on every attempt of one message."""
    return "msg_" + secrets.token_urlsafe(18)


async def next_number(session: AsyncSession, key: str) -> int:
    """The next value of a named counter. Its row stays locked until the caller's transaction ends, so a second
    transaction numbering the same key waits and commits after: numbers follow commit order."""
    statement = (
        insert(OutboxCounter)
        .values(key=key, value=1)
        .on_conflict_do_update(index_elements=[OutboxCounter.key], set_={"value": OutboxCounter.value + 1})
        .returning(OutboxCounter.value)
    )
    return int((await session.execute(statement)).scalar_one())


async def add(
    session: AsyncSession,
    *,
    kind: str,
    target: str,
    dedupe_key: str,
    event_type: str,
    ordering_key: str,
    position: int,
    payload: dict[str, Any],
    message_id: str | None = None,
) -> bool:
    """Queue one message for one target in the current transaction; a second message with the same
    (kind, target, dedupe_key) is not added (False)."""
    statement = (
        insert(OutboxMessage)
        .values(
            kind=kind,
            target=target,
            dedupe_key=dedupe_key,
            message_id=message_id or new_message_id(),
            event_type=event_type,
            ordering_key=ordering_key,
            position=position,
            payload=payload,
            next_attempt_at=func.now(),
        )
        .on_conflict_do_nothing(constraint="uq_outbox_messages_kind_target_dedupe_key")
        .returning(OutboxMessage.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def requeue(
    session: AsyncSession,
    *,
    kind: str,
    target: str,
    message_ids: list[int] | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> int:
    """Send messages again (same ids, same order): one message, or all of a target created in a time range. A
    message being sent right now is left alone."""
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.kind == kind, OutboxMessage.target == target, OutboxMessage.status != "sending")
        .values(status="pending", next_attempt_at=utcnow(), lease_until=None, delivered_at=None, handed_off_at=None)
    )
    if message_ids is not None:
        statement = statement.where(OutboxMessage.id.in_(message_ids))
    if created_from is not None:
        statement = statement.where(OutboxMessage.created_at >= created_from)
    if created_to is not None:
        statement = statement.where(OutboxMessage.created_at < created_to)
    result = await session.execute(statement.returning(OutboxMessage.id))
    return len(result.all())


async def latest_payload(
    session: AsyncSession, *, kind: str, target: str, ordering_key: str, event_type: str
) -> dict[str, Any] | None:
    """The body of the last message of a type queued for one user and target (to tell whether a state changed)."""
    return await session.scalar(
        select(OutboxMessage.payload)
        .where(
            OutboxMessage.kind == kind,
            OutboxMessage.target == target,
            OutboxMessage.ordering_key == ordering_key,
            OutboxMessage.event_type == event_type,
        )
        .order_by(OutboxMessage.position.desc(), OutboxMessage.id.desc())
        .limit(1)
    )
