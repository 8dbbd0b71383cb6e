"""The single-head chain written before lanes becomes lane 0 and verifies unchanged; new commits then spread over
the lanes and the whole still verifies."""

from __future__ import annotations

import json

import asyncpg

from payment import migrate
from payment.audit import service as audit
from payment.audit.chain import GENESIS, chain_key, row_hash
from payment.audit.verify import verify_chain
from payment.config import DEV_SECRET_KEY
from payment.db import Database
from payment.dburl import libpq_url, with_database
from tests.support.db import admin_execute

NAME = "audit_lanes_migration"
BEFORE_LANES = "0011_admin_session_list"


async def _chain_the_old_way(conn: asyncpg.Connection, key: bytes, action: str) -> int:
    """An audit row chained as the single-head chain did: next position, previous hash from the head."""
    row = await conn.fetchrow(
        "INSERT INTO audit_log (actor, action, details) VALUES ('system', $1, '{\"n\": 1}'::jsonb) "
        "RETURNING id, at, actor, action, entity_type, entity_id, details, ip",
        action,
    )
    head = await conn.fetchrow("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
    seq, prev = head["last_seq"] + 1, head["last_hash"] or GENESIS
    # the pre-lanes canonical form, spelled out here so a change to lane 0's hashing fails this test
    fields = [seq, row["id"], row["at"].isoformat(), row["actor"], row["action"], None, None, {"n": 1}, None]
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = row_hash(key, prev, body)
    await conn.execute(
        "UPDATE audit_log SET chain_seq = $2, prev_hash = $3, row_hash = $4 WHERE id = $1", row["id"], seq, prev, digest
    )
    await conn.execute("UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1", seq, digest)
    return int(row["id"])


async def test_the_chain_written_before_lanes_is_lane_zero_and_still_verifies(pg_server_url: str) -> None:
    await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{NAME}"')
    await admin_execute(pg_server_url, f'CREATE DATABASE "{NAME}"')
    url = with_database(pg_server_url, NAME)
    key = chain_key(DEV_SECRET_KEY)
    try:
        await migrate.upgrade_async(url, BEFORE_LANES)
        conn = await asyncpg.connect(libpq_url(url))
        try:
            old = [await _chain_the_old_way(conn, key, f"test.old.{n}") for n in range(3)]
        finally:
            await conn.close()
        await migrate.upgrade_async(url)
        db = Database(url, null_pool=True, audit_key=key)
        try:
            async with db.session() as session:
                verdict = await verify_chain(session, key=key)
            assert verdict.ok, verdict.problems
            assert verdict.rows == 3
            async with db.transaction() as session:
                new = await audit.record(session, actor=audit.SYSTEM, action="test.after_lanes")
            async with db.session() as session:
                verdict = await verify_chain(session, key=key)
            assert verdict.ok and verdict.rows == 4, verdict.problems
        finally:
            await db.dispose()
        conn = await asyncpg.connect(libpq_url(url))
        try:
            lanes = dict(
                await conn.fetch("SELECT id, chain_lane FROM audit_log WHERE id = ANY($1::bigint[])", [*old, new.id])
            )
            ends = await conn.fetchval("SELECT count(*) FROM audit_chain_lanes")
        finally:
            await conn.close()
        assert [lanes[i] for i in old] == [0, 0, 0] and lanes[new.id] is not None
        assert ends == 16
    finally:
        await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
