"""CSV exports as a spreadsheet program reads them: BOM, header, the list's filters, formulas neutralised."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from payment.db import Database
from payment.documents import runner
from payment.exports import service as exports
from payment.exports.csv_format import BOM
from payment.models import Customer
from tests.integration.documents.helpers import paid_invoice, succeeded_refund, suite_seller
from tests.support.factories import create_invoice


async def read_csv(db: Database, kind: str, filters: dict[str, str], *, batch: int = 2000) -> list[dict[str, str]]:
    if kind == "vat_summary":
        chunks = [c async for c in exports.stream(db, kind, filters)]
    else:
        chunks = [c async for c in exports.stream_table(db, kind, filters, batch=batch)]
    body = b"".join(chunks)
    assert body.startswith(BOM)
    return list(csv.DictReader(io.StringIO(body[len(BOM) :].decode("utf-8"))))


async def test_invoice_export_has_document_numbers_vat_and_escaped_names(database: Database) -> None:
    await suite_seller(database)
    customer, invoice = await paid_invoice(
        database, name='=HYPERLINK("http://evil.example","click")', amount_cents=10700
    )
    await runner.run(database)
    await succeeded_refund(database, invoice, 1070)
    await runner.run(database)

    rows = await read_csv(database, "invoices", {"customer": str(customer.id)})
    assert len(rows) == 1
    row = rows[0]
    assert row["customer_name"] == "'" + '=HYPERLINK("http://evil.example","click")'
    assert row["tax_invoice_number"].startswith("TI") and row["credit_note_numbers"].startswith("CN")
    assert (row["amount"], row["amount_before_vat"], row["vat"], row["vat_rate_percent"]) == (
        "107.00",
        "100.00",
        "7.00",
        "7.00",
    )
    assert row["refunded"] == "10.70" and row["status"] == "partially_refunded"

    customers = await read_csv(database, "customers", {"q": customer.external_user_id})
    assert [c["name"] for c in customers] == ["'" + '=HYPERLINK("http://evil.example","click")']
    refunds = await read_csv(database, "refunds", {"invoice": str(invoice.id)})
    assert refunds[0]["credit_note_number"].startswith("CN") and refunds[0]["vat"] == "0.70"


async def test_batches_follow_each_other_without_loss_or_repeat(database: Database) -> None:
    customer, _ = await paid_invoice(database)
    for _ in range(6):
        async with database.transaction() as session:
            row = await session.get(Customer, customer.id)
            assert row is not None
            await create_invoice(session, row, status="open")
    rows = await read_csv(database, "invoices", {"customer": str(customer.id)}, batch=2)
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == 7 and ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    open_only = await read_csv(database, "invoices", {"customer": str(customer.id), "status": "open"}, batch=4)
    assert len(open_only) == 6


async def test_vat_summary_is_output_vat_by_month_less_credit_notes(database: Database) -> None:
    seller = await suite_seller(database)
    await runner.run(database)  # whatever earlier tests left due
    before = {
        (r["month"], r["currency"]): r for r in await read_csv(database, "vat_summary", {"seller": str(seller.id)})
    }
    _, invoice = await paid_invoice(database, amount_cents=21400)
    await runner.run(database)
    await succeeded_refund(database, invoice, 10700)
    await runner.run(database)
    after = await read_csv(database, "vat_summary", {"seller": str(seller.id)})
    assert after, "the summary has this month's row"
    row = after[-1]
    old = before.get((row["month"], row["currency"]))

    def grew(name: str) -> str:
        return str(Decimal(row[name]) - (Decimal(old[name]) if old else Decimal(0)))

    assert (grew("sales_before_vat"), grew("output_vat"), grew("vat_credited"), grew("net_output_vat")) == (
        "200.00",
        "14.00",
        "7.00",
        "7.00",
    )
