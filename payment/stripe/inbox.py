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


# $1 Stripe id, $2 type, $3 object id, $4 the verified body as text, $5 Stripe's created time, $6 status,
# $7 job queue, $8 task name, $9 the event's API version
_STORE_AND_DEFER = """
WITH inserted AS (
    INSERT INTO stripe_events (stripe_event_id, type, object_id, payload, stripe_created_at, received_at,
                               received_via, status, handled_at, api_version)
    VALUES ($1, $2, $3, $4::text::jsonb, $5, now(), 'webhook', $6::varchar,
            CASE WHEN $6::varchar = 'ignored' THEN now() END, $9)
    ON CONFLICT (stripe_event_id) DO NOTHING
    RETURNING id, status
), stored AS (
    SELECT id, status, true AS created FROM inserted
    UNION ALL
    SELECT id, status, false FROM stripe_events WHERE stripe_event_id = $1 AND NOT EXISTS (SELECT 1 FROM inserted)
), deferred AS (
    SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(
               $7::text, $8::text, 0, NULL, NULL, jsonb_build_object('event_row_id', stored.id), NULL
           )::procrastinate_job_to_defer_v1]) AS job_ids
      FROM stored WHERE stored.status = 'pending'
)
SELECT stored.id, stored.status, stored.created, (SELECT count(*) FROM deferred) AS deferred FROM stored
"""


async def store_and_defer(
    conn: Any, event: dict[str, Any], payload: bytes, *, task: str, queue: str = "default"
) -> Stored:
    """Store a verified delivery once (its body as sent, parsed by PostgreSQL only) and, while it is pending, defer
    the job that applies it, in one statement on an asyncpg connection: the event and its job commit together, so
    no delivery is stored without a job (a redelivery of a pending event defers another; applying is idempotent)."""
    handled = event["type"] in HANDLED_TYPES
    obj = (event.get("data") or {}).get("object") or {}
    args = (
        event["id"],
        event["type"][:128],
        id_of(obj.get("id")),
        payload.decode("utf-8"),
        ts(event.get("created")) or utcnow(),
        "pending" if handled else "ignored",
        queue,
        task,
        event_api_version(event),
    )
    for _ in range(2):  # a twin delivery committed after this statement's snapshot: look again
        row = await conn.fetchrow(_STORE_AND_DEFER, *args)
        if row is not None:
            return Stored(int(row["id"]), bool(row["created"]), str(row["status"]))
    raise RuntimeError("stripe event neither inserted nor found")
