"""The tamper-evident audit chain: each audit row carries a keyed hash of its content and of the row before it in
its lane.

The chain has several lanes (16; `audit_chain_head.lanes`), each an independent sequence with its own end row in
`audit_chain_lanes`. Rows are chained when their transaction commits (a `before_commit` hook of `ChainedSession`),
not when they are added: the hook locks a lane no other transaction holds (`FOR UPDATE SKIP LOCKED`; only when all
are held does it wait for one), gives the transaction's new rows the next positions in that lane, hashes them and
moves the lane's end, all inside the committing transaction. So concurrent commits append side by side instead of
one after the other, a lane is locked only for the commit itself (never across a Stripe call made earlier in the
transaction), and a transaction that rolls back leaves no position behind. The API's session hot path, which
has no ORM session, does the same on its driver connection but computes the hashes before its audit rows exist
(their ids taken from the sequence while it holds the lane) and inserts them already chained (`insert_on_driver`),
so each of its rows is written once. `verify` walks every lane.

The hash is HMAC-SHA256 under a key derived from SECRET_KEY: someone who can write to the database but does not
hold the key cannot rewrite a row and recompute the chain after it. A row's lane is part of what it hashes (lane 0
rows hash as the single chain did before lanes, so the chain written before keeps verifying).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from payment.models import AuditLog

GENESIS = bytes(32)
PENDING = "audit_chain_pending"
DEFERRED = "audit_chain_deferred"
KEY = "audit_chain_key"


def chain_key(secret_key: str) -> bytes:
    """The chain's HMAC key, derived from SECRET_KEY so that no new secret has to be managed."""
    return hmac.new(secret_key.encode(), b"aquoris-payment audit chain v1", hashlib.sha256).digest()


def content(
    lane: int,
    seq: int,
    row_id: int,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str | None,
    entity_id: str | None,
    details: Any,
    ip: str | None,
) -> bytes:
    """The bytes a row's hash covers, in one canonical form (sorted keys, no spaces, UTC time); the lane is last, and
    left out for lane 0, whose rows were written when the chain had one lane."""
    fields = [seq, row_id, at.isoformat(), actor, action, entity_type, entity_id, details, ip]
    if lane:
        fields.append(lane)
    return json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def row_hash(key: bytes, prev_hash: bytes, body: bytes) -> bytes:
    return hmac.new(key, prev_hash + body, hashlib.sha256).digest()


COLUMNS = (
    AuditLog.id,
    AuditLog.at,
    AuditLog.actor,
    AuditLog.action,
    AuditLog.entity_type,
    AuditLog.entity_id,
    AuditLog.details,
    AuditLog.ip,
)


def mark_pending(session: Session, row_id: int) -> None:
    """Remember an audit row added in this transaction, to be chained when it commits."""
    session.info.setdefault(PENDING, []).append(row_id)


def defer_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Audit rows (each maps actor, action, entity_type, entity_id, details, ip) to be inserted when this
    transaction commits, already chained: no ORM object, and at commit one statement takes their ids and a lane and
    one inserts them with their chain fields (instead of an insert now, and at commit a read and an update)."""
    session.info.setdefault(DEFERRED, []).extend(rows)


class ChainedSession(Session):
    """The ORM session of the service: appends the transaction's audit rows to the chain at commit."""


@dataclass
class Links:
    """The lane positions and hashes of a transaction's new rows, and where the lane's end moves to."""

    lane: int
    ids: list[int]
    seqs: list[int]
    prevs: list[bytes]
    hashes: list[bytes]
    seq: int
    last_hash: bytes


def link(key: bytes, lane: int, head_seq: int, head_hash: bytes | None, rows: Sequence[Any]) -> Links:
    """Give rows (in id order; each maps the audit column names to values) the positions after the lane's end."""
    seq, prev = head_seq, head_hash or GENESIS
    links = Links(lane, [], [], [], [], seq, prev)
    for row in rows:
        seq += 1
        details = row["details"]
        if isinstance(details, str):  # a driver connection without a jsonb codec
            details = json.loads(details)
        digest = row_hash(
            key,
            prev,
            content(
                lane,
                seq,
                row["id"],
                row["at"],
                row["actor"],
                row["action"],
                row["entity_type"],
                row["entity_id"],
                details,
                row["ip"],
            ),
        )
        links.ids.append(row["id"])
        links.seqs.append(seq)
        links.prevs.append(prev)
        links.hashes.append(digest)
        prev = digest
    links.seq, links.last_hash = seq, prev
    return links


# A free lane: the lowest one no other transaction holds (a lane this transaction holds already is not skipped).
TAKE_FREE_LANE = "SELECT id, last_seq, last_hash FROM audit_chain_lanes ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
# every lane is held (more committing transactions than lanes): wait for one, chosen at random to spread the wait
WAIT_FOR_LANE = "SELECT id, last_seq, last_hash FROM audit_chain_lanes ORDER BY random() LIMIT 1 FOR UPDATE"
# the same free-lane lock as a CTE, for a one-statement hot path to fold into its own statement (name it `lane`
# and select lane_id, lane_seq and lane_hash from it so that PostgreSQL runs it)
LANE_CTE = (
    "lane AS (SELECT id AS lane_id, last_seq AS lane_seq, last_hash AS lane_hash FROM audit_chain_lanes "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
)


@dataclass(frozen=True)
class LaneEnd:
    lane: int
    seq: int
    hash: bytes | None


# The rows already chained (ids, times, text, details as JSON text, chain fields) and the lane's new end, in one
# prepared statement: PostgreSQL plans it once per connection (asyncpg's statement cache), so each row is written
# once, with its chain fields, at the cost of a bind instead of a parse and plan per request.
# $1 ids, $2 ats, $3 actors, $4 actions, $5 entity types, $6 entity ids, $7 details, $8 ips, $9 lane,
# $10 seqs, $11 prevs, $12 hashes, $13 the lane's new last seq, $14 its new last hash
INSERT_CHAINED = """
    WITH chained AS (
        INSERT INTO audit_log (id, at, actor, action, entity_type, entity_id, details, ip, chain_lane, chain_seq,
                               prev_hash, row_hash)
        SELECT r.id, r.at, r.actor, r.action, r.entity_type, r.entity_id, r.details::jsonb, r.ip, $9::smallint,
               r.seq, r.prev, r.hash
          FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                      $8::text[], $10::bigint[], $11::bytea[], $12::bytea[])
               AS r(id, at, actor, action, entity_type, entity_id, details, ip, seq, prev, hash)
    )
    UPDATE audit_chain_lanes SET last_seq = $13::bigint, last_hash = $14::bytea WHERE id = $9::smallint
"""


async def insert_on_driver(conn: Any, rows: Sequence[Any], key: bytes, *, lane: LaneEnd | None, commit: bool) -> None:
    """Write audit rows already chained on an asyncpg connection, inside its open transaction (the rule of the ORM
    sessions' commit hook, for a hot path that has no ORM session). Each row maps the audit column names to values,
    its id taken from the table's sequence in this transaction and its `at` the transaction's time. `lane` is the
    lane the caller's statement locked through LANE_CTE (None when every lane was held: then this waits for one);
    with `commit`, the transaction is committed after."""
    if lane is None:
        found = await conn.fetchrow(WAIT_FOR_LANE)
        lane = LaneEnd(found["id"], found["last_seq"], found["last_hash"])
    ordered = sorted(rows, key=lambda r: r["id"])
    links = link(key, lane.lane, lane.seq, lane.hash, ordered)
    await conn.execute(
        INSERT_CHAINED,
        [row["id"] for row in ordered],
        [row["at"] for row in ordered],
        [row["actor"] for row in ordered],
        [row["action"] for row in ordered],
        [row["entity_type"] for row in ordered],
        [row["entity_id"] for row in ordered],
        [json.dumps(row["details"]) for row in ordered],
        [row["ip"] for row in ordered],
        links.lane,
        links.seqs,
        links.prevs,
        links.hashes,
        links.seq,
        links.last_hash,
    )
    if commit:
        await conn.execute("COMMIT")


def _chain_pending(session: Session) -> None:
    pending: list[int] = session.info.pop(PENDING, [])
    deferred: list[dict[str, Any]] = session.info.pop(DEFERRED, [])
    if not pending and not deferred:
        return
    key = session.info.get(KEY)
    if not isinstance(key, bytes):
        raise RuntimeError("this database handle has no audit chain key (pass audit_key to Database)")
    session.flush()
    if deferred and not pending:
        _insert_chained(session, key, deferred)
        return
    if deferred:  # rows added the ORM way too: these join them, inserted now and chained with them below
        pending.extend(session.execute(INSERT_UNCHAINED, _unchained(row)).scalar_one() for row in deferred)
    # this transaction's rows still there (a rolled back savepoint may have removed some) and a free lane, locked,
    # in one statement: the lane is held for this round trip, the append and the commit
    rows: Sequence[Any] = session.execute(PENDING_ROWS_AND_LANE, {"ids": pending}).all()
    if not rows:
        return
    first = rows[0]
    lane = (
        LaneEnd(first.lane_id, first.lane_seq, first.lane_hash)
        if first.lane_id is not None
        else LaneEnd(*session.execute(text(WAIT_FOR_LANE)).one())  # every lane is held: wait for one
    )
    links = link(key, lane.lane, lane.seq, lane.hash, [row._mapping for row in rows])
    session.execute(
        APPEND,
        {
            "lane": links.lane,
            "ids": links.ids,
            "seqs": links.seqs,
            "prevs": links.prevs,
            "hashes": links.hashes,
            "seq": links.seq,
            "hash": links.last_hash,
        },
    )


PENDING_ROWS_AND_LANE = text(f"""
    WITH {LANE_CTE}
    SELECT lane.lane_id, lane.lane_seq, lane.lane_hash,
           a.id, a.at, a.actor, a.action, a.entity_type, a.entity_id, a.details, a.ip
      FROM audit_log AS a LEFT JOIN lane ON true
     WHERE a.id = ANY(CAST(:ids AS bigint[])) AND a.chain_seq IS NULL
     ORDER BY a.id
""")  # noqa: S608 (the one interpolation is this module's constant)

# the rows and the lane's end in one statement
APPEND = text("""
    WITH chained AS (
        UPDATE audit_log SET chain_lane = :lane, chain_seq = v.seq, prev_hash = v.prev, row_hash = v.hash
        FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:prevs AS bytea[]),
                    CAST(:hashes AS bytea[])) AS v(id, seq, prev, hash)
        WHERE audit_log.id = v.id
    )
    UPDATE audit_chain_lanes SET last_seq = :seq, last_hash = :hash WHERE id = :lane
""")


def _unchained(row: dict[str, Any]) -> dict[str, Any]:
    entity_id = row.get("entity_id")
    return {
        "actor": str(row["actor"]),
        "action": row["action"],
        "entity_type": row.get("entity_type"),
        "entity_id": None if entity_id is None else str(entity_id),
        "details": json.dumps(row.get("details") or {}),
        "ip": row.get("ip"),
    }


INSERT_UNCHAINED = text("""
    INSERT INTO audit_log (actor, action, entity_type, entity_id, details, ip)
    VALUES (:actor, :action, :entity_type, :entity_id, CAST(:details AS jsonb), :ip)
    RETURNING id
""")

# A free lane, locked (NULL when every lane is held), the transaction's time (the rows' `at`, as the column's
# default gives) and :n ids from the table's sequence, in one statement
LANE_AND_IDS = text(f"""
    WITH {LANE_CTE}
    SELECT lane.lane_id, lane.lane_seq, lane.lane_hash, now() AS at,
           ARRAY(SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) FROM generate_series(1, :n)) AS ids
      FROM (SELECT 1) AS one LEFT JOIN lane ON true
""")  # noqa: S608 (the one interpolation is this module's constant)

# INSERT_CHAINED with named parameters, for the ORM session's connection
INSERT_CHAINED_NAMED = text("""
    WITH chained AS (
        INSERT INTO audit_log (id, at, actor, action, entity_type, entity_id, details, ip, chain_lane, chain_seq,
                               prev_hash, row_hash)
        SELECT r.id, CAST(:at AS timestamptz), r.actor, r.action, r.entity_type, r.entity_id, CAST(r.details AS jsonb),
               r.ip, CAST(:lane AS smallint), r.seq, r.prev, r.hash
          FROM unnest(CAST(:ids AS bigint[]), CAST(:actors AS text[]), CAST(:actions AS text[]),
                      CAST(:entity_types AS text[]), CAST(:entity_ids AS text[]), CAST(:details AS text[]),
                      CAST(:ips AS text[]), CAST(:seqs AS bigint[]), CAST(:prevs AS bytea[]),
                      CAST(:hashes AS bytea[]))
               AS r(id, actor, action, entity_type, entity_id, details, ip, seq, prev, hash)
    )
    UPDATE audit_chain_lanes SET last_seq = :seq, last_hash = :hash WHERE id = :lane
""")


def _insert_chained(session: Session, key: bytes, deferred: list[dict[str, Any]]) -> None:
    """The deferred rows, chained before they exist: their ids, time and a lane first, then one insert."""
    got = session.execute(LANE_AND_IDS, {"n": len(deferred)}).one()
    lane = (
        LaneEnd(got.lane_id, got.lane_seq, got.lane_hash)
        if got.lane_id is not None
        else LaneEnd(*session.execute(text(WAIT_FOR_LANE)).one())  # every lane is held: wait for one
    )
    rows = []
    for row_id, entry in zip(sorted(got.ids), deferred, strict=True):
        row = _unchained(entry)
        # hashed as it will be read back (jsonb, parsed), as verify reads it
        rows.append({**row, "id": row_id, "at": got.at, "details": json.loads(row["details"]), "text": row["details"]})
    links = link(key, lane.lane, lane.seq, lane.hash, rows)
    session.execute(
        INSERT_CHAINED_NAMED,
        {
            "at": got.at,
            "lane": links.lane,
            "ids": links.ids,
            "actors": [row["actor"] for row in rows],
            "actions": [row["action"] for row in rows],
            "entity_types": [row["entity_type"] for row in rows],
            "entity_ids": [row["entity_id"] for row in rows],
            "details": [row["text"] for row in rows],
            "ips": [row["ip"] for row in rows],
            "seqs": links.seqs,
            "prevs": links.prevs,
            "hashes": links.hashes,
            "seq": links.seq,
            "hash": links.last_hash,
        },
    )


def _forget_pending(session: Session, *args: Any) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(DEFERRED, None)


event.listen(ChainedSession, "before_commit", _chain_pending)
event.listen(ChainedSession, "after_rollback", _forget_pending)
