"""Sellers, paid invoices and refunds for document tests, committed (documents are issued by a job)."""

from __future__ import annotations

import io
from itertools import count

from PIL import Image
from sqlalchemy import select

from payment.db import Database
from payment.documents.sellers import SellerInput, save_seller
from payment.models import Customer, Invoice, Refund, SellerProfile, utcnow
from tests.support.factories import create_app, create_customer, create_invoice, create_plan, create_subscription

_n = count(1)
SELLER_TAX_ID = "0105553123452"
BUYER_TAX_ID = "0994000165510"


def logo_png() -> bytes:
    """A small real PNG (a blue bar), as an admin would upload."""
    out = io.BytesIO()
    Image.new("RGB", (160, 48), (20, 80, 160)).save(out, format="PNG")
    return out.getvalue()


async def suite_seller(db: Database) -> SellerProfile:
    """The suite-wide seller profile (made once per database)."""
    async with db.transaction() as session:
        found = (
            await session.execute(select(SellerProfile).where(SellerProfile.app_id.is_(None)))
        ).scalar_one_or_none()
        if found is not None:
            return found
        return await save_seller(
            session,
            SellerInput(
                legal_name="บริษัท อควอริส จำกัด",
                legal_name_en="Aquoris Co., Ltd.",
                address="99/1 ถนนสุขุมวิท แขวงคลองเตยเหนือ เขตวัฒนา กรุงเทพมหานคร 10110",
                address_en="99/1 Sukhumvit Road, Khlong Toei Nuea, Watthana, Bangkok 10110",
                tax_id=SELLER_TAX_ID,
                branch_code="00000",
                logo=logo_png(),
            ),
            actor="test",
        )


async def paid_invoice(
    db: Database, *, amount_cents: int = 29900, name: str = "สมชาย ใจดี", plan_name: str = "Aquoris PRO"
) -> tuple[Customer, Invoice]:
    async with db.transaction() as session:
        app, _ = await create_app(session)
        plan = await create_plan(session, name=plan_name, app_id=app.id)
        customer = await create_customer(session)
        customer.name = name
        sub = await create_subscription(session, customer, plan)
        invoice = await create_invoice(
            session,
            customer,
            amount_cents=amount_cents,
            subscription=sub,
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
        )
    return customer, invoice


async def succeeded_refund(db: Database, invoice: Invoice, amount_cents: int, reason: str = "Service outage") -> Refund:
    async with db.transaction() as session:
        refund = Refund(
            invoice_id=invoice.id,
            amount_cents=amount_cents,
            currency=invoice.currency,
            reason=reason,
            status="succeeded",
            created_by="test",
            succeeded_at=utcnow(),
            stripe_refund_id=f"re_test{next(_n)}",
        )
        session.add(refund)
        row = await session.get(Invoice, invoice.id)
        assert row is not None
        row.amount_refunded_cents += amount_cents
        row.status = "partially_refunded" if row.amount_refunded_cents < row.amount_cents else "refunded"
        await session.flush()
    return refund
