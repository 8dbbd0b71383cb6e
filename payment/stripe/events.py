"""Applying a stored Stripe event exactly once in the caller's transaction, putting a failed one back, listing them.

Session-first functions only; the jobs that call them (process, record a failure, enqueue, sweep, catch up) are
payment/jobs/stripe_events.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, PaymentError, StripeError
from payment.listing import DEFAULT_PAGE_SIZE, Page, keyset_page
from payment.models import StripeEvent, utcnow
from payment.models.ops import EVENT_STATUSES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.handlers import HANDLERS, lock_key
from payment.stripe.reader import ts

log = logging.getLogger(__name__)

# Stripe answering "no such object" can be a moment of replication lag; after this many attempts it is final.
NOT_FOUND_ATTEMPTS = 3


class NeverApplies(PaymentError):
    """An event that no retry can apply (no object, an object of the wrong type, an object Stripe does not have)."""

    code = "stripe_event_unusable"


def describe(exc: BaseException) -> str:
    """What admins see of a failure: our own messages in full, anything else by kind only (never SQL or data)."""
    if isinstance(exc, PaymentError):
        return exc.message
    if isinstance(exc, SQLAlchemyError):
        return f"Database error ({type(exc).__name__}); see the server logs."
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return f"Network or database unreachable ({type(exc).__name__})."
    return f"Unexpected error ({type(exc).__name__})."


async def apply(session: AsyncSession, gateway: StripeGateway, row: StripeEvent, *, actor: str) -> bool:
    """Apply one stored event in the caller's transaction with an audit row; False when it was already applied
    or is of a type we do not handle."""
    return await apply_with(session, gateway, row, (), actor=actor) is not None


# The event row locked, then the lock of its Stripe customer (lock_key): the CTE locks the row as the outer query
# reads it, and the outer query's column takes the advisory lock after, so both in one round trip and in the order
# apply_with takes them (never the customer's lock while waiting for an event row).
_LOCK_EVENT_AND_CUSTOMER = text("""
    WITH ev AS MATERIALIZED (SELECT * FROM stripe_events WHERE id = :id FOR UPDATE)
    SELECT ev.*, pg_advisory_xact_lock(hashtextextended(:key, 0)) AS customer_lock FROM ev
""")


async def lock_for_applying(session: AsyncSession, event_row_id: int, key: str) -> StripeEvent | None:
    """The event row, locked, and the lock of the Stripe customer `key` (lock_key of its payload) taken after it:
    what apply_with(..., locked_key=key) takes first, in one statement."""
    found: StripeEvent | None = (
        await session.scalars(
            select(StripeEvent).from_statement(_LOCK_EVENT_AND_CUSTOMER), {"id": event_row_id, "key": key}
        )
    ).one_or_none()
    return found


async def apply_with(
    session: AsyncSession,
    gateway: StripeGateway,
    row: StripeEvent,
    others: Sequence[int],
    *,
    actor: str,
    locked_key: str | None = None,
) -> list[int] | None:
    """Apply one stored event, and with it the pending events `others` of the same object and call (stored before
    the snapshot `gateway` applies was asked for, so it shows what they announced): each is marked handled with
    its own audit row, and its own job finds it done. One another job holds is left to that job. Returns the ids
    of the other events applied with it; None when the event itself was not applied (done already, or a type we
    do not handle). `locked_key`: the customer's lock the caller took already (lock_for_applying)."""
    if row.status in ("handled", "ignored"):
        return None
    handler = HANDLERS.get(row.type)
    if handler is None:
        row.status, row.handled_at = "ignored", utcnow()
        return None
    try:
        obj = reader.event_object(row.payload, handler.object_type)
    except reader.UnusableObject as exc:
        raise NeverApplies(f"This {row.type} event can never apply: {exc}") from None
    key = lock_key(row.payload)
    served = await _same_object(session, row, obj, key, others)
    # serialise events of one Stripe customer across workers: each maps a snapshot, then writes
    if key != locked_key:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    times = [ts(r.payload.get("created")) or r.stripe_created_at for r in (row, *served)]
    event_at = max(times)
    try:
        applied = await handler.apply(session, gateway, obj, event_at, actor)
    except StripeError as exc:
        if exc.code == "resource_missing" and row.attempts + 1 >= NOT_FOUND_ATTEMPTS:
            raise NeverApplies(
                f"This {row.type} event can never apply: Stripe has no {handler.object_type} "
                f"{obj['id']} (answered 'no such object' {row.attempts + 1} times)."
            ) from exc
        raise
    entries = []
    handled_at = utcnow()
    done_ids = [done.id for done in (row, *served)]
    # one UPDATE of the rows, not the ORM's unit of work for each; the objects are told what it wrote
    await session.execute(
        update(StripeEvent.__table__)  # type: ignore[arg-type]
        .where(StripeEvent.__table__.c.id.in_(done_ids))
        .values(status="handled", handled_at=handled_at, last_error=None, attempts=StripeEvent.__table__.c.attempts + 1)
    )
    for done in (row, *served):
        set_committed_value(done, "status", "handled")
        set_committed_value(done, "handled_at", handled_at)
        set_committed_value(done, "last_error", None)
        set_committed_value(done, "attempts", done.attempts + 1)
        details: dict[str, Any] = {"stripe_event_id": done.stripe_event_id, "event_row_id": done.id}
        if done is not row:
            details["applied_with_event_row_id"] = row.id
        entries.append(
            {
                "actor": actor,
                "action": f"stripe.{done.type}"[:64],
                "entity_type": applied.entity_type,
                "entity_id": applied.entity_id,
                "details": {**details, **applied.details},
            }
        )
    await audit.record_many(session, entries)  # inserted at commit, chained, in one statement
    return [other.id for other in served]


async def _same_object(
    session: AsyncSession, row: StripeEvent, obj: reader.JSON, key: str, others: Sequence[int]
) -> list[StripeEvent]:
    """Of `others`, the pending events this one's snapshot serves (same call, same object, same lock), locked;
    those another transaction holds are skipped."""
    if not others:
        return []
    handler = HANDLERS[row.type]
    found = await session.scalars(
        select(StripeEvent)
        .where(StripeEvent.id.in_(list(others)), StripeEvent.id != row.id, StripeEvent.status == "pending")
        .order_by(StripeEvent.id)
        .with_for_update(skip_locked=True)
    )
    served: list[StripeEvent] = []
    for other in found.all():
        other_handler = HANDLERS.get(other.type)
        if other_handler is None or other_handler.apply is not handler.apply:
            continue
        try:
            other_obj = reader.event_object(other.payload, handler.object_type)
        except reader.UnusableObject:
            continue  # its own job records why it never applies
        if other_obj["id"] == obj["id"] and lock_key(other.payload) == key:
            served.append(other)
    return served


async def retry(session: AsyncSession, event_row_id: int, *, actor: str) -> StripeEvent:
    """Put a failed (or stuck pending) event back to pending so it is applied again; handled events cannot be
    retried."""
    require(actor, Permission.RETRY_WEBHOOK)
    row = await session.get(StripeEvent, event_row_id, with_for_update=True)
    if row is None:
        raise NotFound("No such webhook event.")
    if row.status not in ("failed", "pending"):
        raise Conflict(f"This event is {row.status}; only failed or pending events can be retried.")
    previous = row.status
    row.status = "pending"
    await audit.record(
        session,
        actor=actor,
        action="stripe_event.retry",
        entity_type="stripe_event",
        entity_id=row.id,
        details={
            "stripe_event_id": row.stripe_event_id,
            "type": row.type,
            "previous_status": previous,
            "last_error": row.last_error,
        },
    )
    return row


def event_filters(filters: dict[str, str]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.get("status") in EVENT_STATUSES:
        where.append(StripeEvent.status == filters["status"])
    if filters.get("type"):
        where.append(StripeEvent.type == filters["type"][:128])
    return where


async def list_events(
    session: AsyncSession,
    filters: dict[str, str],
    *,
    after: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    with_total: bool = True,
) -> Page[StripeEvent]:
    """Stored Stripe events matching the filters (status, type), newest first, for the admin list."""
    return await keyset_page(
        session,
        select(StripeEvent),
        key=StripeEvent.id,
        after=after,
        limit=limit,
        count_model=StripeEvent if with_total else None,
        where=event_filters(filters),
    )
