"""Invoice history as the end user sees it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import Customer, Invoice

HISTORY_LIMIT = 24


async def history(session: AsyncSession, customer: Customer, *, limit: int = HISTORY_LIMIT) -> list[Invoice]:
    """The customer's invoices, newest first, drafts left out."""
    query = (
        select(Invoice)
        .where(Invoice.customer_id == customer.id, Invoice.status != "draft")
        .order_by(Invoice.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
