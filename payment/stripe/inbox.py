"""The Stripe inbox: verify a delivery's signature over the raw body, store each event exactly once (with the job
that applies it, for webhook deliveries)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.errors import PaymentError
from payment.models import StripeEvent, utcnow
from payment.stripe.gateway import StripeGateway
from payment.stripe.handlers import HANDLED_TYPES
from payment.stripe.reader import event_api_version, id_of, ts

SIGNATURE_TOLERANCE_SECONDS = 300


class SignatureInvalid(PaymentError):
    status_code = 400
    code = "invalid_signature"


class NotAnEvent(PaymentError):
    """Correctly signed, but not a Stripe event (not a JSON object with an id and a type)."""

    status_code = 400
    code = "not_an_event"


@dataclass(frozen=True)
class Stored:
    """The stored event's row id, whether this delivery stored it, and its status."""

    id: int
    created: bool
    status: str


def verify(gateway: StripeGateway, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, when `Stripe-Signature` signs this exact body with our secret within 5 minutes."""
    if not signature:
        raise SignatureInvalid("Missing Stripe-Signature header.")
    if not gateway.verify_webhook(payload, signature, tolerance=SIGNATURE_TOLERANCE_SECONDS):
        raise SignatureInvalid("Invalid or expired Stripe signature.")
    # signed by Stripe (or whoever holds our secret), yet it may still not be an event
    try:
        event = json.loads(payload)
    except ValueError:
        raise NotAnEvent("Not a Stripe event.") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise NotAnEvent("Not a Stripe event.")
    return event


def _plain_json(event: dict[str, Any]) -> dict[str, Any]:
    """The event as JSON types only (the SDK decodes `*_decimal` fields as Decimal)."""

    def default(value: object) -> str:
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(type(value).__name__)

    plain: dict[str, Any] = json.loads(json.dumps(event, default=default))
    return plain


async def store_event(
    session: AsyncSession, event: dict[str, Any], *, via: str = "webhook", now: datetime | None = None
) -> Stored:
    """Insert a Stripe event once (unique Stripe id) with the API version it was rendered in; a type we do not
    handle is stored as ignored."""
    now = now or utcnow()
    handled = event["type"] in HANDLED_TYPES
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    values = {
        "stripe_event_id": event["id"],
        "type": event["type"][:128],
        "object_id": id_of(obj.get("id")),
        "payload": _plain_json(event),
        "stripe_created_at": ts(event.get("created")) or now,
        "received_at": now,
        "received_via": via,
        "api_version": event_api_version(event),
        "status": "pending" if handled else "ignored",
        "handled_at": None if handled else now,
    }
    statement = (
        insert(StripeEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[StripeEvent.stripe_event_id])
        .returning(StripeEvent.id)
    )
    new_id = await session.scalar(statement)
    if new_id is not None:
        return Stored(int(new_id), True, str(values["status"]))
    existing = (
        await session.execute(
            select(StripeEvent.id, StripeEvent.status).where(StripeEvent.stripe_event_id == event["id"])
        )
    ).one()
    return Stored(int(existing.id), False, str(existing.status))


@dataclass(frozen=True)
class Delivery:
    """A verified webhook delivery, reduced to the columns it is stored with."""

    event_id: str
    type: str
    object_id: str | None
    payload: str
    created: datetime
    status: str
    api_version: str | None


def delivery(event: dict[str, Any], payload: bytes) -> Delivery:
    """The row a verified event is stored as: only its id, type, object, time and version are read here."""
    obj = (event.get("data") or {}).get("object") or {}
    return Delivery(
        event["id"],
        event["type"][:128],
        id_of(obj.get("id")) if isinstance(obj, dict) else None,
        payload.decode("utf-8"),
        ts(event.get("created")) or utcnow(),
        "pending" if event["type"] in HANDLED_TYPES else "ignored",
        event_api_version(event),
    )


# Distinct Stripe ids as parallel arrays ($1..$7), $8 job queue, $9 task name. One statement stores the new events
# (each body as sent, parsed by PostgreSQL only), finds those already stored, and defers one job per pending event.
_STORE_AND_DEFER_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
                  AS i(stripe_event_id, type, object_id, payload, stripe_created_at, status, api_version)
), inserted AS (
    INSERT INTO stripe_events (stripe_event_id, type, object_id, payload, stripe_created_at, received_at,
                               received_via, status, handled_at, api_version)
    SELECT stripe_event_id, type, object_id, payload::jsonb, stripe_created_at, now(), 'webhook', status,
           CASE WHEN status = 'ignored' THEN now() END, api_version
      FROM input
    ON CONFLICT (stripe_event_id) DO NOTHING
    RETURNING id, stripe_event_id, status
), stored AS (
    SELECT id, stripe_event_id, status, true AS created FROM inserted
    UNION ALL
    SELECT e.id, e.stripe_event_id, e.status, false
      FROM stripe_events e JOIN input USING (stripe_event_id)
     WHERE NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.stripe_event_id = e.stripe_event_id)
), deferred AS (
    SELECT procrastinate_defer_jobs_v1(ARRAY(
               SELECT ROW($8::text, $9::text, 0, NULL, NULL, jsonb_build_object('event_row_id', id), NULL
                      )::procrastinate_job_to_defer_v1
                 FROM stored WHERE status = 'pending' ORDER BY id
           )) AS job_ids
)
SELECT stored.id, stored.stripe_event_id, stored.status, stored.created,
       (SELECT cardinality(job_ids) FROM deferred) AS deferred
  FROM stored
"""


async def store_and_defer_many(
    conn: Any, deliveries: list[Delivery], *, task: str, queue: str = "default"
) -> dict[str, Stored]:
    """Store verified deliveries (distinct Stripe ids) once and, while each is pending, defer the job that applies
    it, in one statement on an asyncpg connection: events and jobs commit together, so no delivery is stored without
    a job (a redelivery of a pending event defers another; applying is idempotent). One round trip and one commit
    for the whole batch. Keyed by Stripe id."""
    found: dict[str, Stored] = {}
    wanted = deliveries
    for _ in range(2):  # a twin delivery committed after this statement's snapshot: look again for those
        columns = [
            [d.event_id for d in wanted],
            [d.type for d in wanted],
            [d.object_id for d in wanted],
            [d.payload for d in wanted],
            [d.created for d in wanted],
            [d.status for d in wanted],
            [d.api_version for d in wanted],
        ]
        for row in await conn.fetch(_STORE_AND_DEFER_MANY, *columns, queue, task):
            found[row["stripe_event_id"]] = Stored(int(row["id"]), bool(row["created"]), str(row["status"]))
        wanted = [d for d in wanted if d.event_id not in found]
        if not wanted:
            return found
    raise RuntimeError("stripe event neither inserted nor found")


async def store_and_defer(
    conn: Any, event: dict[str, Any], payload: bytes, *, task: str, queue: str = "default"
) -> Stored:
    """One verified delivery stored and deferred as a batch of one (for callers outside the webhook endpoint)."""
    one = delivery(event, payload)
    return (await store_and_defer_many(conn, [one], task=task, queue=queue))[one.event_id]
