"""Gap-free numbers: one counter row per (seller, series, year), locked FOR UPDATE by the transaction that makes
the document, so a rollback gives the number back and two documents never share one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.documents.rules import document_number
from payment.models import DocumentCounter


async def lock_counter(session: AsyncSession, *, seller_id: int, series: str, year: int) -> DocumentCounter:
    """The counter row, created when missing and locked until the end of the caller's transaction."""
    await session.execute(
        insert(DocumentCounter)
        .values(seller_id=seller_id, series=series, year=year, next_number=1)
        .on_conflict_do_nothing()
    )
    counter = (
        await session.execute(
            select(DocumentCounter)
            .where(
                DocumentCounter.seller_id == seller_id, DocumentCounter.series == series, DocumentCounter.year == year
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return counter


def take_number(counter: DocumentCounter) -> tuple[int, str]:
    """The locked counter's next (sequence, printed number); the counter moves on by one."""
    sequence = counter.next_number
    counter.next_number = sequence + 1
    return sequence, document_number(counter.series, counter.year, sequence)
