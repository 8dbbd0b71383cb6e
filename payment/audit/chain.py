"""The tamper-evident audit chain: each audit row carries a keyed hash of its content and of the row before it.

Rows are chained when their transaction commits (a `before_commit` hook of `ChainedSession`), not when they are
added: the hook locks the single chain-head row, gives the transaction's new rows the next positions, hashes them
and moves the head, all inside the committing transaction. So the head is locked only for the commit itself (never
across a Stripe call made earlier in the transaction), concurrent writers append one after the other, and a
transaction that rolls back leaves no position behind.

The hash is HMAC-SHA256 under a key derived from SECRET_KEY: someone who can write to the database but does not
hold the key cannot rewrite a row and recompute the chain after it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from payment.models import AuditChainHead, AuditLog

GENESIS = bytes(32)
PENDING = "audit_chain_pending"
KEY = "audit_chain_key"


def chain_key(secret_key: str) -> bytes:
    """The chain's HMAC key, derived from SECRET_KEY so that no new secret has to be managed."""
    return hmac.new(secret_key.encode(), b"aquoris-payment audit chain v1", hashlib.sha256).digest()


def content(
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
    """The bytes a row's hash covers, in one canonical form (sorted keys, no spaces, UTC time)."""
    return json.dumps(
        [seq, row_id, at.isoformat(), actor, action, entity_type, entity_id, details, ip],
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


class ChainedSession(Session):
    """The ORM session of the service: appends the transaction's audit rows to the chain at commit."""


@dataclass
class Links:
    """The chain positions and hashes of a transaction's new rows, and where the head moves to."""

    ids: list[int]
    seqs: list[int]
    prevs: list[bytes]
    hashes: list[bytes]
    seq: int
    last_hash: bytes


def link(key: bytes, head_seq: int, head_hash: bytes | None, rows: Sequence[Any]) -> Links:
    """Give rows (in id order; each maps the audit column names to values) the positions after the head."""
    seq, prev = head_seq, head_hash or GENESIS
    links = Links([], [], [], [], seq, prev)
    for row in rows:
        seq += 1
        details = row["details"]
        if isinstance(details, str):  # a driver connection without a jsonb codec
            details = json.loads(details)
        digest = row_hash(
            key,
            prev,
            content(
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


async def append_on_driver(conn: Any, rows: Sequence[Any], key: bytes) -> None:
    """Chain audit rows that a one-statement hot path wrote on an asyncpg connection, inside its open transaction
    (the same rule as the ORM sessions' commit hook, for code that has no ORM session)."""
    if not rows:
        return
    head = await conn.fetchrow("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
    links = link(key, head["last_seq"], head["last_hash"], sorted(rows, key=lambda r: r["id"]))
    await conn.execute(APPEND_POSITIONAL, links.ids, links.seqs, links.prevs, links.hashes, links.seq, links.last_hash)


def _chain_pending(session: Session) -> None:
    pending: list[int] = session.info.pop(PENDING, [])
    if not pending:
        return
    key = session.info.get(KEY)
    if not isinstance(key, bytes):
        raise RuntimeError("this database handle has no audit chain key (pass audit_key to Database)")
    session.flush()
    # only this transaction's rows, and only those still there (a rolled back savepoint may have removed some);
    # read before the head is locked, so the lock covers two round trips and the commit
    rows: Sequence[Any] = session.execute(
        select(*COLUMNS).where(AuditLog.id.in_(pending), AuditLog.chain_seq.is_(None)).order_by(AuditLog.id)
    ).all()
    if not rows:
        return
    head = session.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(AuditChainHead.id == 1).with_for_update()
    ).one()
    links = link(key, head.last_seq, head.last_hash, [row._mapping for row in rows])
    session.execute(
        APPEND,
        {
            "ids": links.ids,
            "seqs": links.seqs,
            "prevs": links.prevs,
            "hashes": links.hashes,
            "seq": links.seq,
            "hash": links.last_hash,
        },
    )


# the rows and the head in one statement
APPEND = text("""
    WITH chained AS (
        UPDATE audit_log SET chain_seq = v.seq, prev_hash = v.prev, row_hash = v.hash
        FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:prevs AS bytea[]),
                    CAST(:hashes AS bytea[])) AS v(id, seq, prev, hash)
        WHERE audit_log.id = v.id
    )
    UPDATE audit_chain_head SET last_seq = :seq, last_hash = :hash WHERE id = 1
""")


APPEND_POSITIONAL = """
    WITH chained AS (
        UPDATE audit_log SET chain_seq = v.seq, prev_hash = v.prev, row_hash = v.hash
        FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS v(id, seq, prev, hash)
        WHERE audit_log.id = v.id
    )
    UPDATE audit_chain_head SET last_seq = $5, last_hash = $6 WHERE id = 1
"""


def _forget_pending(session: Session, *args: Any) -> None:
    session.info.pop(PENDING, None)


event.listen(ChainedSession, "before_commit", _chain_pending)
event.listen(ChainedSession, "after_rollback", _forget_pending)
