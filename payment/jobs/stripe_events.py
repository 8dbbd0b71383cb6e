"""The jobs of the Stripe path: apply a stored event, record its failure, enqueue it, sweep the stored events left
without a job, catch up on events Stripe never delivered.

The webhook stores an event together with its job (payment/stripe/inbox.py), but an event stored another way
(catch-up, an admin's retry) is enqueued after its transaction, and that enqueue can be lost: `sweep` re-enqueues
stored events without a job, and `catch_up` pulls events Stripe never delivered from its events API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import procrastinate
from sqlalchemy import func, select, text

from payment.audit import service as audit
from payment.jobs import NAMESPACE
from payment.jobs.context import is_final_attempt, services_of_job
from payment.models import StripeEvent, utcnow
from payment.runtime import Services
from payment.stripe import events, reader
from payment.stripe.gateway import Snapshot, Unfetched
from payment.stripe.handlers import HANDLED_TYPES, HANDLERS, lock_key, prefetch, same_reads
from payment.stripe.inbox import store_event

log = logging.getLogger(__name__)

# the task's name, once: registered under it in the blueprint, deferred and looked up as APPLY_TASK
APPLY_EVENT = "apply_stripe_event"
APPLY_TASK = f"{NAMESPACE}:{APPLY_EVENT}"
DEFER_TIMEOUT_SECONDS = 5.0
SWEEP_AFTER_SECONDS = 10
CATCH_UP_OVERLAP = timedelta(hours=1)
CATCH_UP_FIRST_WINDOW = timedelta(days=1)
CATCH_UP_MAX_PAGES = 100


class EventRetry(procrastinate.RetryStrategy):
    """Retry a Stripe event with back-off, except one that can never apply (it has failed for good already)."""

    def get_retry_exception(self, exception: BaseException, job: Any) -> Any:
        if isinstance(exception, events.NeverApplies):
            return None
        return super().get_retry_exception(exception, job)


# 10 retries 2, 4, 8 ... 1024 s apart (about 34 minutes in all), then the event is shown as failed to admins.
EVENT_RETRY = EventRetry(max_attempts=10, exponential_wait=2)


async def apply_stripe_event(context: procrastinate.JobContext, event_row_id: int) -> None:
    await process_event(services_of_job(context), event_row_id, final_attempt=is_final_attempt(context, EVENT_RETRY))


async def sweep_stripe_events(context: procrastinate.JobContext, timestamp: int) -> None:
    await sweep(services_of_job(context))


async def catch_up_stripe_events(context: procrastinate.JobContext, timestamp: int) -> None:
    await catch_up(services_of_job(context))


async def process_event(services: Services, event_row_id: int, *, final_attempt: bool = False) -> bool:
    """The job body: apply the event (reads from Stripe first, then one short transaction); on failure record the
    error (status `failed` once no retry is left, or at once for an event that can never apply) and re-raise so
    the job is retried."""
    try:
        return await _apply(services, event_row_id)
    except events.NeverApplies as exc:
        # failed for good now, not after ten retries; raised so the job fails (and reaches Sentry) without a retry
        await record_failure(services, event_row_id, exc, final=True)
        raise
    except Exception as exc:
        await record_failure(services, event_row_id, exc, final=final_attempt)
        raise


# The event, a fetch ticket taken before any read of its snapshot, and the other pending events of its object and
# call: committed before this statement began, so what they announced happened before the snapshot is read.
_BEFORE_READING = text("""
    SELECT e.status, e.type, e.payload, nextval('stripe_fetch_tickets') AS ticket,
           ARRAY(SELECT o.id FROM stripe_events o
                  WHERE o.object_id = e.object_id AND o.status = 'pending' AND o.id <> e.id
                    AND CAST(:groups AS jsonb) ->> o.type = CAST(:groups AS jsonb) ->> e.type
                  ORDER BY o.id LIMIT :most) AS others
      FROM stripe_events e
     WHERE e.id = :id
""")
# The waiting jobs of events applied with another one's snapshot (Procrastinate's own cancel, deleting the job; a
# job already started finds its event handled and ends).
_DROP_WAITING_JOBS = text("""
    SELECT procrastinate_cancel_job_v1(j.id, false, true) FROM procrastinate_jobs j
     WHERE j.status = 'todo' AND j.task_name = :task
       AND (j.args->>'event_row_id')::bigint = ANY(CAST(:ids AS bigint[]))
""")
# event type -> the first type applied by the same call (events of one group and object share a snapshot)
READ_GROUPS = json.dumps({t: same_reads(t)[0] for t in HANDLED_TYPES})
# events of one object served by one snapshot, at most (each gets its own audit row in the transaction)
COALESCE_AT_MOST = 200
# reads the prefetch did not foresee, made one per round between attempts of the transaction
READ_ROUNDS = 6


async def _apply(services: Services, event_row_id: int) -> bool:
    """Read what the event's call needs from Stripe with no transaction open and no connection held, then apply
    it in a short transaction (row lock, per-customer lock, the mappings' "not older than stored" check), serving
    the other pending events of the same object with the same snapshot."""
    async with services.db.session() as session:
        found = (
            await session.execute(
                _BEFORE_READING, {"id": event_row_id, "groups": READ_GROUPS, "most": COALESCE_AT_MOST}
            )
        ).one_or_none()
    if found is None or found.status in ("handled", "ignored"):
        return False
    snapshot = Snapshot(int(found.ticket))
    recording = services.stripe.recording(snapshot)
    handler = HANDLERS.get(found.type)
    if handler is not None:
        try:
            obj = reader.event_object(found.payload, handler.object_type)
        except reader.UnusableObject:
            pass  # the transaction below records that it never applies
        else:
            await prefetch(handler, recording, obj)
    replaying = services.stripe.replaying(snapshot)
    key = lock_key(found.payload)  # an event's payload never changes
    for _ in range(READ_ROUNDS):
        try:
            async with services.db.transaction() as session:
                row = await events.lock_for_applying(session, event_row_id, key)
                if row is None:
                    return False
                served = await events.apply_with(
                    session, replaying, row, list(found.others), actor=audit.STRIPE, locked_key=key
                )
                if served:  # their jobs have nothing left to do: those not started yet go with this commit
                    await session.execute(_DROP_WAITING_JOBS, {"task": APPLY_TASK, "ids": served})
                return served is not None
        except Unfetched as missing:
            await recording.fetch(missing)  # the transaction is over: no connection waits for Stripe
    raise RuntimeError(f"stripe event row {event_row_id} still needed Stripe reads after {READ_ROUNDS} rounds")


async def record_failure(services: Services, event_row_id: int, exc: Exception, *, final: bool) -> None:
    """Count the failed attempt with what admins may see of it; `failed` (and audited) once no retry is left."""
    message = events.describe(exc)
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
                await audit.record(
                    session,
                    actor=audit.SYSTEM,
                    action="stripe_event.failed",
                    entity_type="stripe_event",
                    entity_id=row.id,
                    details={
                        "stripe_event_id": row.stripe_event_id,
                        "type": row.type,
                        "error": message,
                        "attempts": row.attempts,
                    },
                )
    except Exception as second:  # the database itself is down: the job retry and the sweep will come back
        log.warning("could not record the failure of stripe event row %s (%s)", event_row_id, type(second).__name__)


async def enqueue_event(services: Services, event_id: int) -> bool:
    """Defer the job that applies stored event row `event_id` (after its transaction committed). False when the
    queue is unreachable: the sweep enqueues it later."""
    try:
        await asyncio.wait_for(
            services.jobs.configure_task(APPLY_TASK).defer_async(event_row_id=event_id), DEFER_TIMEOUT_SECONDS
        )
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
    params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}, "types": list(HANDLED_TYPES), "limit": 100}
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
