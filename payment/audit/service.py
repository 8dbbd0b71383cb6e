"""The audit trail: one row per admin action or state change, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit.chain import mark_pending
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


async def record_many(session: AsyncSession, entries: list[dict[str, Any]]) -> list[AuditLog]:
    """`record` for several rows (each a dict of record's keyword arguments) with one flush: one INSERT of all
    the rows rather than a round trip each."""
    rows = [
        AuditLog(
            actor=str(entry["actor"]),
            action=entry["action"],
            entity_type=entry.get("entity_type"),
            entity_id=None if entry.get("entity_id") is None else str(entry["entity_id"]),
            details=entry.get("details") or {},
            ip=entry.get("ip"),
        )
        for entry in entries
    ]
    session.add_all(rows)
    await session.flush()
    for row in rows:
        mark_pending(session.sync_session, row.id)
    return rows
