"""Tax invoices/receipts and credit notes as a buyer and the Revenue Department would read them (pdftotext)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from payment.db import Database
from payment.documents import runner
from payment.documents.service import download, save_buyer_details
from payment.models import AuditLog, Customer, Document, Invoice
from tests.integration.documents.helpers import (
    BUYER_TAX_ID,
    SELLER_TAX_ID,
    paid_invoice,
    succeeded_refund,
    suite_seller,
)
from tests.support.pdf import comparable, pdf_fonts, pdf_page_png, pdf_text

SHOTS = Path(os.environ.get("DOCUMENT_SHOTS", "/tmp/aquoris-document-shots"))
SHOTS.mkdir(parents=True, exist_ok=True)


async def documents_of(db: Database, invoice_id: int) -> list[Document]:
    async with db.session() as session:
        return list(
            (
                await session.execute(select(Document).where(Document.invoice_id == invoice_id).order_by(Document.id))
            ).scalars()
        )


async def test_a_paid_invoice_gets_a_tax_invoice_with_every_field_of_section_86_4(database: Database) -> None:
    await suite_seller(database)
    customer, invoice = await paid_invoice(database, amount_cents=29900)
    async with database.transaction() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        await save_buyer_details(
            session,
            row,
            company_name="บริษัท ลูกค้าดี จำกัด",
            address="1 ถนนพระราม 4 กรุงเทพมหานคร 10500",
            tax_id=BUYER_TAX_ID,
            branch_code="00001",
            actor="test",
        )
    await runner.run(database)

    [doc] = await documents_of(database, invoice.id)
    assert doc.kind == "tax_invoice" and doc.pdf is not None
    assert doc.sha256 == hashlib.sha256(doc.pdf).hexdigest()
    assert (doc.net_cents, doc.vat_cents, doc.total_cents) == (27944, 1956, 29900)
    words = comparable(pdf_text(doc.pdf))
    for required in (
        "ใบกำกับภาษี/ใบเสร็จรับเงิน",
        "Tax invoice/Receipt",  # the words
        "บริษัท อควอริส จำกัด",
        "Aquoris Co., Ltd.",  # seller's name
        "99/1 ถนนสุขุมวิท",
        "Sukhumvit Road",  # seller's address
        SELLER_TAX_ID,
        "สำนักงานใหญ่ / Head office",  # seller's tax id and branch
        "บริษัท ลูกค้าดี จำกัด",
        "1 ถนนพระราม 4",
        BUYER_TAX_ID,  # buyer's name, address, tax id
        "สาขาที่ 00001 / Branch 00001",
        doc.number,
        doc.issue_date.isoformat(),  # number and date
        "Aquoris PRO subscription",  # description
        "Amount before VAT 279.44",
        "VAT 7% 19.56",
        "Total 299.00 THB",  # amounts, VAT separate
        "Prices include VAT",
    ):
        assert comparable(required) in words, f"{required!r} missing from the tax invoice"
    assert re.fullmatch(r"TI\d{4}-\d{6}", doc.number)
    assert "Loma" in pdf_fonts(doc.pdf)  # the Thai font is embedded, not substituted
    pdf_page_png(doc.pdf, SHOTS / "tax_invoice.png")


async def test_a_refund_gets_a_credit_note_that_references_its_tax_invoice(database: Database) -> None:
    await suite_seller(database)
    _, invoice = await paid_invoice(database, amount_cents=10700)
    await runner.run(database)
    refund = await succeeded_refund(database, invoice, 5350, reason="Outage 3 days")
    await runner.run(database)

    tax_invoice, note = await documents_of(database, invoice.id)
    assert note.kind == "credit_note" and note.refund_id == refund.id and note.original_document_id == tax_invoice.id
    assert note.pdf is not None
    assert re.fullmatch(r"CN\d{4}-\d{6}", note.number)
    words = comparable(pdf_text(note.pdf))
    for required in (
        "ใบลดหนี้",
        "Credit note",
        SELLER_TAX_ID,
        note.number,
        tax_invoice.number,
        "Refers to tax invoice No.",
        tax_invoice.issue_date.isoformat(),
        "Original value: 107.00 THB",
        "Correct value: 53.50 THB",
        "Difference: 53.50 THB",
        "Reduction before VAT 50.00",
        "VAT 7% 3.50",
        "Total credited 53.50 THB",
        "Outage 3 days",
    ):
        assert comparable(required) in words, f"{required!r} missing from the credit note"
    pdf_page_png(note.pdf, SHOTS / "credit_note.png")


async def test_changed_buyer_details_reissue_a_replacement_that_references_the_first(database: Database) -> None:
    await suite_seller(database)
    customer, invoice = await paid_invoice(database, name="Ann Buyer")
    await runner.run(database)
    [first] = await documents_of(database, invoice.id)
    assert first.buyer_name == "Ann Buyer" and first.buyer_tax_id is None

    async with database.transaction() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        await save_buyer_details(
            session,
            row,
            company_name="Ann Trading Co., Ltd.",
            address="5 Silom Road, Bangkok",
            tax_id=BUYER_TAX_ID,
            actor="test",
        )
    result = await runner.run(database)
    assert result.issued == 1
    first_again, replacement = await documents_of(database, invoice.id)
    assert first_again.pdf == first.pdf  # the first is kept as it was
    assert replacement.replaces_id == first.id and replacement.total_cents == first.total_cents
    assert replacement.number != first.number
    assert replacement.pdf is not None
    words = comparable(pdf_text(replacement.pdf))
    for required in (
        "ฉบับแทน / Replacement",
        f"Issued in place of No. {first.number}",
        "Ann Trading Co., Ltd.",
        BUYER_TAX_ID,
        "สำนักงานใหญ่ / Head office",
    ):
        assert comparable(required) in words
    pdf_page_png(replacement.pdf, SHOTS / "replacement.png")
    assert (await runner.run(database)).issued == 0  # nothing more is due


async def test_running_again_issues_nothing_new(database: Database) -> None:
    await suite_seller(database)
    _, invoice = await paid_invoice(database)
    await runner.run(database)
    await runner.run(database)
    assert len(await documents_of(database, invoice.id)) == 1


async def test_an_issued_document_cannot_be_changed_or_deleted(database: Database) -> None:
    await suite_seller(database)
    _, invoice = await paid_invoice(database)
    await runner.run(database)
    [doc] = await documents_of(database, invoice.id)
    for statement in (
        "UPDATE documents SET total_cents = 1, net_cents = 1, vat_cents = 0 WHERE id = :id",
        "UPDATE documents SET pdf = 'x', sha256 = 'y' WHERE id = :id",
        "DELETE FROM documents WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match=r"cannot be (changed|deleted)"):
            async with database.transaction() as session:
                await session.execute(text(statement), {"id": doc.id})


async def test_downloads_are_audited_and_only_the_buyer_may_download(database: Database) -> None:
    await suite_seller(database)
    customer, invoice = await paid_invoice(database)
    other, _ = await paid_invoice(database)
    await runner.run(database)
    [doc] = await documents_of(database, invoice.id)
    async with database.transaction() as session:
        got = await download(session, doc.id, actor=f"customer:{customer.id}", customer_id=customer.id)
        assert got.pdf == doc.pdf
    from payment.errors import NotFound

    with pytest.raises(NotFound):
        async with database.transaction() as session:
            await download(session, doc.id, actor=f"customer:{other.id}", customer_id=other.id)
    async with database.session() as session:
        rows = (
            (
                await session.execute(
                    select(AuditLog).where(AuditLog.action == "document.downloaded", AuditLog.entity_id == str(doc.id))
                )
            )
            .scalars()
            .all()
        )
    assert [r.actor for r in rows] == [f"customer:{customer.id}"]


async def test_a_discounted_invoice_names_its_discount_on_the_tax_invoice(database: Database) -> None:
    await suite_seller(database)
    _, invoice = await paid_invoice(database, amount_cents=23920)
    async with database.transaction() as session:
        row = await session.get(Invoice, invoice.id)
        assert row is not None
        row.subtotal_cents, row.discount_cents = 29900, 5980
    await runner.run(database)
    [doc] = await documents_of(database, invoice.id)
    assert doc.total_cents == 23920  # what was paid
    words = comparable(pdf_text(doc.pdf or b""))
    assert comparable("ส่วนลด / discount THB 59.80 จาก / off THB 299.00") in words
    assert comparable("Total 239.20 THB") in words
