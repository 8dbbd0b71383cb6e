"""The audit log: every admin action and state change, newest first, filterable, read-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from admin_views.audit_text import actor_emails
from admin_views.keyset import FilterSpec, KeysetModelView
from payment.customers import records
from payment.listing import Page
from payment.models import AuditLog


class AuditLogView(KeysetModelView, model=AuditLog):
    name = "Audit log"
    name_plural = "Audit log"
    icon = "fa-solid fa-clipboard-list"
    list_headers = ("When", "Actor", "Action", "Entity", "Details", "IP")
    row_template = "admin/rows/audit.html"
    filter_names = ("actor", "action", "entity_type", "entity_id")
    can_view_details = False
    export_kind = "audit"

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        return [
            FilterSpec("actor", "Actor (e.g. admin:1)"),
            FilterSpec("action", "Action (e.g. plan.created)"),
            FilterSpec("entity_type", "Entity type"),
            FilterSpec("entity_id", "Entity id"),
        ]

    async def row_context(self, session: AsyncSession, rows: list[Any]) -> dict[str, Any]:
        """Admin actors ("admin:3") shown by their email."""
        return {"actor_names": await actor_emails(session, (row.actor for row in rows))}

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        return await records.list_audit(session, filters, after=after, limit=limit, with_total=with_total)
