"""Numbers are gap-free and unique per seller, series and year, even when many payments are numbered at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from payment.db import Database
from payment.documents import issuance
from payment.models import Document, Invoice, utcnow
from tests.integration.documents.helpers import paid_invoice, suite_seller


async def test_fifty_concurrent_payments_get_fifty_consecutive_numbers(database: Database) -> None:
    seller = await suite_seller(database)
    invoices: list[Invoice] = [(await paid_invoice(database))[1] for _ in range(50)]
    async with database.session() as session:
        before = set(
            (
                await session.execute(
                    select(Document.sequence).where(Document.seller_id == seller.id, Document.series == "TI")
                )
            ).scalars()
        )
    start = asyncio.Event()

    async def issue(invoice_id: int) -> str | None:
        await start.wait()
        async with database.transaction() as session:
            document = await issuance.issue_tax_invoice(session, invoice_id, now=utcnow())
            return document.number if document else None

    # each invoice twice: the second attempt must find the first's document and take no number
    tasks = [asyncio.create_task(issue(invoice.id)) for invoice in invoices + invoices]
    start.set()
    results = await asyncio.gather(*tasks)

    numbers = [n for n in results if n is not None]
    assert len(numbers) == 50 and len(set(numbers)) == 50
    async with database.session() as session:
        rows = (
            (await session.execute(select(Document).where(Document.seller_id == seller.id, Document.series == "TI")))
            .scalars()
            .all()
        )
    sequences = sorted(d.sequence for d in rows if d.sequence not in before)
    assert sequences == list(range(len(before) + 1, len(before) + 51))  # no gap, no duplicate
    assert {d.invoice_id for d in rows} >= {i.id for i in invoices}


async def test_a_rolled_back_issue_gives_its_number_back(database: Database) -> None:
    await suite_seller(database)
    _, first = await paid_invoice(database)
    _, second = await paid_invoice(database)

    class Abort(Exception):
        pass

    try:
        async with database.transaction() as session:
            taken = await issuance.issue_tax_invoice(session, first.id, now=utcnow())
            assert taken is not None
            raise Abort
    except Abort:
        pass
    async with database.transaction() as session:
        again = await issuance.issue_tax_invoice(session, second.id, now=utcnow())
    assert again is not None and taken is not None and again.number == taken.number
