"""Opening a billing session for a client app in one statement: the API's hot path.

Key lookup, customer creation, session insert, the lock of a free audit chain lane and the ids of the audit rows to
come run as a single SQL statement on the driver connection; the audit rows are then hashed into the
tamper-evident chain here and inserted already chained, with the lane's new end, by a prepared statement (BEGIN,
the statement, the audit rows, COMMIT: four round trips, each audit row written once, never updated). The
rules are those of `apps.authenticate_key`, `customers.upsert` and `billing_sessions.create`; anything off the
happy path (unknown key, slug of another app, a known customer whose details this request changes) answers None
and the caller takes the ORM path, which explains a refusal and sends a changed customer to client apps as
`customer.updated`.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from payment.audit import chain
from payment.audit.service import app_actor
from payment.billing.customers import CustomerInput
from payment.billing_sessions.service import CreatedSession, billing_url
from payment.models import utcnow
from payment.security import digest, new_token

# $1 key digest, $2 app slug, $3 external user id, $4 email, $5 name, $6 locale, $7 session id, $8 token digest,
# $9 expires at
OPEN_SESSION = f"""
WITH {chain.LANE_CTE}, app AS (
    SELECT id FROM apps WHERE api_key_hash = $1 AND is_active AND slug = $2
), prior AS (
    SELECT c.id FROM customers c WHERE c.external_user_id = $3 AND EXISTS (SELECT 1 FROM app)
), changed AS (
    -- a known customer whose email, name or locale this request changes: the ORM path applies it (so the change is
    -- audited field by field and reaches client apps as customer.updated through the outbox)
    SELECT 1 FROM customers c JOIN prior ON prior.id = c.id
     WHERE ($4::text IS NOT NULL AND $4::text IS DISTINCT FROM c.email)
        OR ($5::text IS NOT NULL AND $5::text IS DISTINCT FROM c.name)
        OR ($6::text IS NOT NULL AND $6::text IS DISTINCT FROM c.locale)
), created AS (
    INSERT INTO customers (external_user_id, email, name, locale, created_at, updated_at)
    SELECT $3, $4, $5, $6, now(), now() FROM app WHERE NOT EXISTS (SELECT 1 FROM prior)
    ON CONFLICT (external_user_id) DO NOTHING
    RETURNING id
), customer AS (
    SELECT id, true AS created FROM created
    UNION ALL
    SELECT id, false FROM prior WHERE NOT EXISTS (SELECT 1 FROM changed)
), made AS (
    INSERT INTO billing_sessions (id, token_hash, app_id, customer_id, locale, expires_at)
    SELECT $7, $8, app.id, customer.id, $6, $9 FROM app, customer
    RETURNING customer_id
)
-- the audit rows' ids come from their sequence now, so their hashes can be computed before they are inserted
SELECT made.customer_id, coalesce(customer.created, false) AS created,
       EXISTS (SELECT 1 FROM changed) AS changes_customer, now() AS at,
       lane.lane_id, lane.lane_seq, lane.lane_hash,
       CASE WHEN customer.created THEN nextval(pg_get_serial_sequence('audit_log', 'id')) END AS customer_audit_id,
       CASE WHEN made.customer_id IS NOT NULL
            THEN nextval(pg_get_serial_sequence('audit_log', 'id')) END AS session_audit_id
  FROM (SELECT 1) AS one LEFT JOIN lane ON true LEFT JOIN made ON true LEFT JOIN customer ON true
"""  # noqa: S608 (the one interpolation is a constant of payment.audit.chain)


async def open_session(
    conn: Any, *, api_key: str, app_slug: str, data: CustomerInput, ttl_seconds: int, base_url: str, audit_key: bytes
) -> CreatedSession | None:
    """Open a billing session for this customer (created if new) in the app owning `api_key`, with its audit rows
    chained, in one short transaction on an asyncpg connection. None when the key is not an active app's, the slug
    is another app's, or the request changes a known customer's email, name or locale (the ORM path does that)."""
    data = data.validated()
    token = new_token()
    session_id = uuid.uuid4()
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    args = (
        digest(api_key),
        app_slug,
        data.external_user_id,
        data.email,
        data.name,
        data.locale,
        session_id,
        digest(token),
        expires_at,
    )
    # Behind PgBouncer the caller already holds a transaction (one server connection throughout); else this opens
    # its own and folds the COMMIT into the chain append.
    own = not conn.is_in_transaction()
    if own:
        await conn.execute("BEGIN")
    try:
        created = await _open_in_transaction(conn, args, audit_key, commit=own)
    except BaseException:
        if own and not conn.is_closed():
            with suppress(Exception):  # the connection may be gone; the original error is the one to raise
                await conn.execute("ROLLBACK")
        raise
    if own and created is None:
        await conn.execute("ROLLBACK")  # nothing was written; this releases the chain lane
    if created is None:
        return None
    return CreatedSession(id=session_id, token=token, url=billing_url(base_url, token), expires_at=expires_at)


async def _open_in_transaction(conn: Any, args: tuple[Any, ...], audit_key: bytes, *, commit: bool) -> int | None:
    """The customer's id once the session and its chained audit rows are written (and committed with `commit`);
    None when the ORM path must answer."""
    for _ in range(2):  # a first session of a user racing with another one: its snapshot missed the new row
        first = await conn.fetchrow(OPEN_SESSION, *args)
        if first["changes_customer"]:
            return None
        customer_id: int | None = first["customer_id"]
        if customer_id is not None:
            lane = (
                None
                if first["lane_id"] is None  # every lane was held: insert_on_driver waits for one
                else chain.LaneEnd(first["lane_id"], first["lane_seq"], first["lane_hash"])
            )
            await chain.insert_on_driver(conn, _audit_rows(first, args), audit_key, lane=lane, commit=commit)
            return customer_id
        # READ COMMITTED: the next statement sees a row committed since; unless the key is simply not this app's
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM apps WHERE api_key_hash = $1 AND is_active AND slug = $2)", args[0], args[1]
        ):
            return None
    return None


def _audit_rows(opened: Any, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The audit rows of an opened session (and of its customer when it is new), as `customers.upsert` and
    `billing_sessions.create` write them on the ORM path."""
    app_slug, external_user_id, session_id, expires_at = args[1], args[2], args[6], args[8]
    customer_id, actor, at = opened["customer_id"], app_actor(app_slug), opened["at"]
    rows = []
    if opened["created"]:
        rows.append(
            _audit_row(
                opened["customer_audit_id"],
                at,
                actor,
                "customer.created",
                "customer",
                str(customer_id),
                {"external_user_id": external_user_id},
            )
        )
    rows.append(
        _audit_row(
            opened["session_audit_id"],
            at,
            actor,
            "billing_session.created",
            "billing_session",
            str(session_id),
            {"app": app_slug, "customer_id": customer_id, "expires_at": expires_at.isoformat()},
        )
    )
    return rows


def _audit_row(
    row_id: int, at: datetime, actor: str, action: str, entity_type: str, entity_id: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": row_id,
        "at": at,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "details": details,
        "ip": None,
    }
