"""The audit trail: one row per admin action or state change, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit.chain import defer_rows, mark_pending
from payment.models import AuditLog

SYSTEM = "system"
STRIPE = "stripe"


def admin_actor(admin_id: int) -> str:
    return f"admin:{admin_id}"


def app_actor(slug: str) -> str:
    return f"app:{slug}"


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    entity_type: str | None = None,
    entity_id: object | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Add an audit row to the current transaction; it joins the tamper-evident chain when the transaction commits."""
    row = AuditLog(
        actor=str(actor),
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        details=details or {},
        ip=ip,
    )
    session.add(row)
    await session.flush()
    mark_pending(session.sync_session, row.id)
    return row


async def record_many(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """`record` for several rows (each a dict of record's keyword arguments), inserted when the transaction commits,
    already chained, in one statement (so not visible to this transaction's own queries before it commits). In a
    savepoint they are added at once the ORM way, so that rolling the savepoint back removes them."""
    if session.in_nested_transaction():
        for entry in entries:
            await record(session, **entry)
        return
    defer_rows(session.sync_session, entries)
