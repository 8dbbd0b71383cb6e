"""Admin: seller profiles with a checked tax id, document downloads and CSV exports, each audited."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import select

from payment.documents import runner
from payment.documents.sellers import seller_for_invoice
from payment.models import AuditLog, Document, Invoice, Plan, Subscription
from payment.runtime import Services
from tests.integration.admin.conftest import page_token
from tests.integration.documents.helpers import SELLER_TAX_ID, logo_png, paid_invoice, succeeded_refund, suite_seller


async def test_a_seller_profile_with_a_wrong_check_digit_is_refused_and_nothing_is_saved(
    admin: httpx.AsyncClient,
) -> None:
    token = await page_token(admin, "/admin/seller-profile/create")
    bad_tax_id = SELLER_TAX_ID[:12] + str((int(SELLER_TAX_ID[12]) + 1) % 10)
    response = await admin.post(
        "/admin/seller-profile/create",
        data={
            "csrf_token": token,
            "app_id": "",
            "legal_name": "บริษัท ทดสอบ จำกัด",
            "address": "1 Bangkok",
            "tax_id": bad_tax_id,
            "branch_code": "00000",
            "vat_registered": "y",
            "vat_rate_percent": "7",
            "prices_include_vat": "y",
        },
        files={"logo": ("logo.png", logo_png(), "image/png")},
    )
    assert response.status_code == 400
    assert "check digit is wrong" in response.text
    listing = await admin.get("/admin/seller-profile/list")
    assert bad_tax_id not in listing.text


async def test_admin_downloads_a_document_from_the_invoice_page_and_it_is_audited(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    db = admin_services.db
    await suite_seller(db)
    _, invoice = await paid_invoice(db)
    await runner.run(db)
    page = await admin.get(f"/admin/invoice/details/{invoice.id}")
    assert page.status_code == 200
    async with db.session() as session:
        doc = (await session.execute(select(Document).where(Document.invoice_id == invoice.id))).scalar_one()
    assert doc.number in page.text and "Download PDF" in page.text
    pdf = await admin.get(f"/admin/documents/{doc.id}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == doc.pdf and pdf.content.startswith(b"%PDF")
    async with db.session() as session:
        audited = (
            (
                await session.execute(
                    select(AuditLog.actor).where(
                        AuditLog.action == "document.downloaded", AuditLog.entity_id == str(doc.id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(audited) == 1 and audited[0].startswith("admin:")
    assert (await admin.get("/admin/documents/999999999/pdf")).status_code == 404


async def test_the_invoice_list_exports_its_filter_as_csv_and_the_export_is_audited(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    db = admin_services.db
    customer, invoice = await paid_invoice(db, name="+cmd|' /C calc'!A0")
    listing = await admin.get(f"/admin/invoice/list?customer={customer.id}")
    assert f"/admin/exports/invoices.csv?customer={customer.id}" in listing.text
    response = await admin.get(f"/admin/exports/invoices.csv?customer={customer.id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["id"], r["customer_name"]) for r in rows] == [(str(invoice.id), "'+cmd|' /C calc'!A0")]
    async with db.session() as session:
        audit = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "export.started").order_by(AuditLog.id.desc()).limit(1)
            )
        ).scalar_one()
    assert audit.entity_id == "invoices" and audit.details == {"filters": {"customer": str(customer.id)}}
    assert (await admin.get("/admin/exports/passwords.csv")).status_code == 404


async def test_the_documents_page_shows_the_vat_summary(admin: httpx.AsyncClient, admin_services: Services) -> None:
    await suite_seller(admin_services.db)
    _, _ = await paid_invoice(admin_services.db)
    await runner.run(admin_services.db)
    page = await admin.get("/admin/documents")
    assert page.status_code == 200
    assert "Output VAT by month" in page.text and SELLER_TAX_ID in page.text


async def test_an_app_gets_its_own_seller_profile_through_the_form(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    db = admin_services.db
    await suite_seller(db)
    _, invoice = await paid_invoice(db)  # its plan belongs to a fresh app
    async with db.session() as session:
        row = await session.get(Invoice, invoice.id)
        assert row is not None
        suite = await seller_for_invoice(session, row)
        assert suite is not None and suite.app_id is None
        app_id = (
            await session.execute(
                select(Plan.app_id)
                .join(Subscription, Subscription.plan_id == Plan.id)
                .where(Subscription.id == row.subscription_id)
            )
        ).scalar_one()
    token = await page_token(admin, "/admin/seller-profile/create")
    response = await admin.post(
        "/admin/seller-profile/create",
        data={
            "csrf_token": token,
            "app_id": str(app_id),
            "legal_name": "บริษัท เวก้า จำกัด",
            "address": "2 Bangkok",
            "tax_id": "0994000165510",
            "branch_code": "2",
            "vat_registered": "y",
            "vat_rate_percent": "7",
            "prices_include_vat": "y",
        },
        files={"logo": ("logo.png", logo_png(), "image/png")},
    )
    assert response.status_code == 302, response.text
    async with db.session() as session:
        row = await session.get(Invoice, invoice.id)
        assert row is not None
        own = await seller_for_invoice(session, row)
    assert own is not None and (own.app_id, own.legal_name, own.branch_code) == (app_id, "บริษัท เวก้า จำกัด", "00002")
    assert own.logo == logo_png()
    await runner.run(db)
    async with db.session() as session:
        doc = (await session.execute(select(Document).where(Document.invoice_id == invoice.id))).scalar_one()
    assert doc.seller_id == own.id and doc.seller_snapshot["branch_code"] == "00002"


async def test_the_refund_page_offers_its_credit_note(admin: httpx.AsyncClient, admin_services: Services) -> None:
    db = admin_services.db
    await suite_seller(db)
    _, invoice = await paid_invoice(db, amount_cents=10700)
    await runner.run(db)
    refund = await succeeded_refund(db, invoice, 10700)
    await runner.run(db)
    page = await admin.get(f"/admin/refund/details/{refund.id}")
    assert page.status_code == 200
    async with db.session() as session:
        note = (await session.execute(select(Document).where(Document.refund_id == refund.id))).scalar_one()
    assert note.number in page.text and "Credit note" in page.text
    pdf = await admin.get(f"/admin/documents/{note.id}/pdf")
    assert pdf.status_code == 200 and pdf.content == note.pdf
    assert f'filename="{note.number}.pdf"' in pdf.headers["content-disposition"]
