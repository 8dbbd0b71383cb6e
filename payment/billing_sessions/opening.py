"""Opening a billing session for a client app in one statement: the API's hot path.

Key lookup, customer upsert, session insert and the audit rows run as a single SQL statement on the driver
connection, so a request costs one round trip to PostgreSQL and commits atomically on its own. The rules are those
of `apps.authenticate_key`, `customers.upsert` and `billing_sessions.create`; anything off the happy path (unknown
key, slug of another app) answers None and the caller takes the ORM path, which explains the refusal.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from payment.audit import chain
from payment.audit.service import app_actor
from payment.billing.customers import CustomerInput
from payment.billing_sessions.service import CreatedSession, billing_url
from payment.models import utcnow
from payment.security import digest, new_token

# $1 key digest, $2 app slug, $3 external user id, $4 email, $5 name, $6 locale, $7 session id, $8 token digest,
# $9 expires at, $10 actor, $11 expires at as ISO text (audit details)
OPEN_SESSION = """
WITH app AS (
    SELECT id FROM apps WHERE api_key_hash = $1 AND is_active AND slug = $2
), prior AS (
    -- no FOR UPDATE: the upsert below locks the row, and a row it updated is then invisible to a locking read
    SELECT c.id, c.email, c.name, c.locale FROM customers c
     WHERE c.external_user_id = $3 AND EXISTS (SELECT 1 FROM app)
), upserted AS (
    INSERT INTO customers AS c (external_user_id, email, name, locale, created_at, updated_at)
    SELECT $3, $4, $5, $6, now(), now() FROM app
    ON CONFLICT (external_user_id) DO UPDATE
       SET email = COALESCE(EXCLUDED.email, c.email), name = COALESCE(EXCLUDED.name, c.name),
           locale = COALESCE(EXCLUDED.locale, c.locale), updated_at = now()
     WHERE (EXCLUDED.email IS NOT NULL AND EXCLUDED.email IS DISTINCT FROM c.email)
        OR (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM c.name)
        OR (EXCLUDED.locale IS NOT NULL AND EXCLUDED.locale IS DISTINCT FROM c.locale)
    RETURNING c.id, xmax = 0 AS created
), customer AS (
    SELECT id, created FROM upserted
    UNION ALL
    SELECT id, false FROM prior WHERE NOT EXISTS (SELECT 1 FROM upserted)
), made AS (
    INSERT INTO billing_sessions (id, token_hash, app_id, customer_id, locale, expires_at)
    SELECT $7, $8, app.id, customer.id, $6, $9 FROM app, customer
    RETURNING customer_id
), audited AS (
    INSERT INTO audit_log (actor, action, entity_type, entity_id, details)
    SELECT $10, 'customer.created', 'customer', customer.id::text,
           jsonb_build_object('external_user_id', $3::text)
      FROM customer WHERE customer.created
    UNION ALL
    SELECT $10, 'customer.updated', 'customer', prior.id::text, jsonb_strip_nulls(jsonb_build_object(
               'email', CASE WHEN $4::text IS DISTINCT FROM prior.email THEN $4::text END,
               'name', CASE WHEN $5::text IS DISTINCT FROM prior.name THEN $5::text END,
               'locale', CASE WHEN $6::text IS DISTINCT FROM prior.locale THEN $6::text END))
      FROM upserted JOIN prior ON prior.id = upserted.id WHERE NOT upserted.created
    UNION ALL
    SELECT $10, 'billing_session.created', 'billing_session', $7::text,
           jsonb_build_object('app', $2::text, 'customer_id', made.customer_id, 'expires_at', $11::text)
      FROM made
    RETURNING id, at, actor, action, entity_type, entity_id, details, ip
)
SELECT (SELECT customer_id FROM made) AS customer_id, audited.*
  FROM (SELECT 1) AS one LEFT JOIN audited ON true
"""


async def open_session(conn: Any, *, api_key: str, app_slug: str, data: CustomerInput, ttl_seconds: int,
                       base_url: str, audit_key: bytes) -> CreatedSession | None:
    """Open a billing session for this customer (created if new; email, name and locale given replace the stored
    ones) in the app owning `api_key`, with its audit rows chained, in one short transaction on an asyncpg
    connection. None when the key is not an active app's or the slug is another app's."""
    data = data.validated()
    token = new_token()
    session_id = uuid.uuid4()
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    args = (digest(api_key), app_slug, data.external_user_id, data.email, data.name, data.locale, session_id,
            digest(token), expires_at, app_actor(app_slug), expires_at.isoformat())
    for _ in range(2):  # a first session of a user racing with another one: its snapshot missed the new row
        async with conn.transaction():
            rows = await conn.fetch(OPEN_SESSION, *args)
            customer_id = rows[0]["customer_id"]
            if customer_id is not None:
                # the audit rows join the tamper-evident chain in the same transaction, as an ORM commit does
                await chain.append_on_driver(conn, [row for row in rows if row["id"] is not None], audit_key)
        if customer_id is not None:
            return CreatedSession(id=session_id, token=token, url=billing_url(base_url, token),
                                  expires_at=expires_at)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM apps WHERE api_key_hash = $1 AND is_active "
                                   "AND slug = $2)", args[0], app_slug):
            return None
    return None
