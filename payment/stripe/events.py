"""Applying stored Stripe events exactly once, retrying them, and finding the ones never applied.

The webhook stores an event and then enqueues a job (Procrastinate cannot defer inside our asyncpg transaction),
so the enqueue can be lost: `sweep` re-enqueues stored events without a job, and `catch_up` pulls events Stripe
never delivered from its events API.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, PaymentError, StripeError
from payment.listing import DEFAULT_PAGE_SIZE, Page, keyset_page
from payment.models import StripeEvent, utcnow
from payment.models.ops import EVENT_STATUSES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.handlers import HANDLED_TYPES, HANDLERS, lock_key
from payment.stripe.reader import ts
from payment.stripe.webhooks import store_event

if TYPE_CHECKING:
    from payment.runtime import Services

log = logging.getLogger(__name__)

APPLY_TASK = "payment:apply_stripe_event"
DEFER_TIMEOUT_SECONDS = 5.0
SWEEP_AFTER_SECONDS = 10
CATCH_UP_OVERLAP = timedelta(hours=1)
CATCH_UP_FIRST_WINDOW = timedelta(days=1)
CATCH_UP_MAX_PAGES = 100
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
    if row.status in ("handled", "ignored"):
        return False
    handler = HANDLERS.get(row.type)
    if handler is None:
        row.status, row.handled_at = "ignored", utcnow()
        return False
    try:
        obj = reader.event_object(row.payload, handler.object_type)
    except reader.UnusableObject as exc:
        raise NeverApplies(f"This {row.type} event can never apply: {exc}") from None
    # serialise events of one Stripe customer across workers: each re-reads Stripe, then writes
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(lock_key(row.payload), 0))))
    event_at = ts(row.payload.get("created")) or row.stripe_created_at
    try:
        applied = await handler.apply(session, gateway, obj, event_at, actor)
    except StripeError as exc:
        if exc.code == "resource_missing" and row.attempts + 1 >= NOT_FOUND_ATTEMPTS:
            raise NeverApplies(f"This {row.type} event can never apply: Stripe has no {handler.object_type} "
                               f"{obj['id']} (answered 'no such object' {row.attempts + 1} times).") from exc
        raise
    row.status, row.handled_at, row.last_error = "handled", utcnow(), None
    row.attempts += 1
    await audit.record(session, actor=actor, action=f"stripe.{row.type}"[:64], entity_type=applied.entity_type,
                       entity_id=applied.entity_id,
                       details={"stripe_event_id": row.stripe_event_id, "event_row_id": row.id, **applied.details})
    return True


async def process_event(services: Services, event_row_id: int, *, final_attempt: bool = False) -> bool:
    """The job body: apply the event in one transaction; on failure record the error (status `failed` once no
    retry is left, or at once for an event that can never apply) and re-raise so the job is retried."""
    try:
        async with services.db.transaction() as session:
            row = await session.get(StripeEvent, event_row_id, with_for_update=True)
            if row is None:
                return False
            return await apply(session, services.stripe, row, actor=audit.STRIPE)
    except NeverApplies as exc:
        # failed for good now, not after ten retries; raised so the job fails (and reaches Sentry) without a retry
        await _record_failure(services, event_row_id, exc, final=True)
        raise
    except Exception as exc:
        await _record_failure(services, event_row_id, exc, final=final_attempt)
        raise


async def _record_failure(services: Services, event_row_id: int, exc: Exception, *, final: bool) -> None:
    message = describe(exc)
    log.warning("stripe event row %s failed%s: %s", event_row_id, " for good" if final else "", message)
    try:
        async with services.db.transaction() as session:
            row = await session.get(StripeEvent, event_row_id, with_for_update=True)
            if row is None or row.status in ("handled", "ignored"):
                return
            row.attempts += 1
            row.last_error = message
            row.status = "failed" if final else "pending"
            if final:
                await audit.record(session, actor=audit.SYSTEM, action="stripe_event.failed",
                                   entity_type="stripe_event", entity_id=row.id,
                                   details={"stripe_event_id": row.stripe_event_id, "type": row.type,
                                            "error": message, "attempts": row.attempts})
    except Exception as second:  # the database itself is down: the job retry and the sweep will come back
        log.warning("could not record the failure of stripe event row %s (%s)", event_row_id,
                    type(second).__name__)


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
    await audit.record(session, actor=actor, action="stripe_event.retry", entity_type="stripe_event",
                       entity_id=row.id, details={"stripe_event_id": row.stripe_event_id, "type": row.type,
                                                  "previous_status": previous, "last_error": row.last_error})
    return row


async def enqueue_event(services: Services, event_id: int) -> bool:
    """Defer the job that applies stored event row `event_id` (after its transaction committed). False when the
    queue is unreachable: the sweep enqueues it later."""
    try:
        await asyncio.wait_for(services.jobs.configure_task(APPLY_TASK).defer_async(event_row_id=event_id),
                               DEFER_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("could not enqueue stripe event row %s (%s); the sweep will", event_id, type(exc).__name__)
        return False
    return True


_UNQUEUED = text("""
    SELECT e.id FROM stripe_events e
     WHERE e.status = 'pending' AND e.received_at < :before
       AND e.id NOT IN (SELECT (j.args->>'event_row_id')::bigint FROM procrastinate_jobs j
                         WHERE j.task_name = :task AND j.status IN ('todo', 'doing'))
     ORDER BY e.id LIMIT :limit
""")


async def sweep(services: Services, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Re-enqueue events stored but not handled that have no job waiting or running; returns how many."""
    before = (now or utcnow()) - timedelta(seconds=SWEEP_AFTER_SECONDS)
    async with services.db.session() as session:
        ids = list((await session.scalars(_UNQUEUED, {"before": before, "limit": limit, "task": APPLY_TASK})).all())
    enqueued = 0
    for event_id in ids:
        enqueued += await enqueue_event(services, int(event_id))
    if ids:
        log.info("sweep re-enqueued %s of %s unhandled stripe events", enqueued, len(ids))
    return enqueued


async def catch_up(services: Services, *, now: datetime | None = None) -> int:
    """Pull events of the handled types from Stripe's events API since shortly before the newest one stored
    (the overlap covers late and out-of-order deliveries), store the ones we lack and enqueue them."""
    async with services.db.session() as session:
        newest = await session.scalar(select(func.max(StripeEvent.stripe_created_at)))
    since = newest - CATCH_UP_OVERLAP if newest else (now or utcnow()) - CATCH_UP_FIRST_WINDOW
    params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}, "types": list(HANDLED_TYPES),
                              "limit": 100}
    found = 0
    for _ in range(CATCH_UP_MAX_PAGES):
        page = await services.stripe.list_events(params)
        events = page.get("data") or []
        new_ids: list[int] = []
        async with services.db.transaction() as session:
            for event in events:
                stored = await store_event(session, event, via="catchup")
                if stored.created and stored.status == "pending":
                    new_ids.append(stored.id)
        for event_id in new_ids:
            await enqueue_event(services, event_id)
        found += len(new_ids)
        if not page.get("has_more") or not events:
            break
        params["starting_after"] = events[-1]["id"]
    if found:
        log.info("catch-up stored %s stripe events that had not been delivered", found)
    return found


def event_filters(filters: dict[str, str]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.get("status") in EVENT_STATUSES:
        where.append(StripeEvent.status == filters["status"])
    if filters.get("type"):
        where.append(StripeEvent.type == filters["type"][:128])
    return where


async def list_events(session: AsyncSession, filters: dict[str, str], *, after: int | None = None,
                      limit: int = DEFAULT_PAGE_SIZE, with_total: bool = True) -> Page[StripeEvent]:
    """Stored Stripe events matching the filters (status, type), newest first, for the admin list."""
    return await keyset_page(session, select(StripeEvent), key=StripeEvent.id, after=after, limit=limit,
                             count_model=StripeEvent if with_total else None, where=event_filters(filters))
