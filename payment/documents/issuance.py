"""Issuing documents: a tax invoice/receipt per paid invoice, a credit note per succeeded refund, a replacement
when the buyer's details change. Each is numbered in the transaction that writes it; the PDF comes later (render).

Idempotent: every document has an issue key ("tax_invoice:<invoice id>", "credit_note:<refund id>",
"replacement:<document id>"), checked while the seller's counter is locked and unique in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from payment.audit import service as audit
from payment.documents import numbering, sellers
from payment.documents.rules import split_vat, thai_date
from payment.models import BuyerDetails, Customer, Document, Invoice, Plan, Refund, SellerProfile, Subscription

PAID_STATUSES = ("paid", "partially_refunded", "refunded")
SERIES_OF = {"tax_invoice": "TI", "credit_note": "CN"}


@dataclass(frozen=True)
class Buyer:
    name: str
    address: str | None
    tax_id: str | None
    branch_code: str | None
    version: int


async def buyer_of(session: AsyncSession, customer: Customer) -> Buyer:
    """The buyer printed on a document: the company the user gave, else their name, email or id."""
    details = await session.get(BuyerDetails, customer.id, populate_existing=True)
    fallback = customer.name or customer.email or customer.external_user_id
    if details is None:
        return Buyer(fallback, None, None, None, 0)
    return Buyer(
        details.company_name or fallback,
        details.address,
        details.tax_id,
        details.branch_code if details.tax_id else None,
        details.version,
    )


def _key_taken(key: str) -> Any:
    return exists().where(Document.issue_key == key)


async def _write(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    seller: SellerProfile,
    customer: Customer,
    invoice_id: int,
    now: datetime,
    actor: str,
    description: str,
    currency: str,
    total_cents: int,
    refund_id: int | None = None,
    original_id: int | None = None,
    replaces: Document | None = None,
) -> Document | None:
    issue_date = thai_date(now)
    series = SERIES_OF[kind]
    counter = await numbering.lock_counter(session, seller_id=seller.id, series=series, year=issue_date.year)
    # under the counter lock every issuer of this series is serialized, so this check cannot race
    if (await session.execute(select(_key_taken(key)))).scalar():
        return None
    sequence, number = numbering.take_number(counter)
    rate_bp = seller.vat_rate_bp if seller.vat_registered else 0
    net, vat = split_vat(total_cents, rate_bp)
    buyer = await buyer_of(session, customer)
    document = Document(
        issue_key=key,
        kind=kind,
        seller_id=seller.id,
        series=series,
        year=issue_date.year,
        sequence=sequence,
        number=number,
        customer_id=customer.id,
        invoice_id=invoice_id,
        refund_id=refund_id,
        original_document_id=original_id,
        replaces_id=replaces.id if replaces else None,
        issue_date=issue_date,
        issued_at=now,
        seller_snapshot=sellers.snapshot(seller),
        buyer_name=buyer.name[:1024],
        buyer_address=buyer.address,
        buyer_tax_id=buyer.tax_id,
        buyer_branch_code=buyer.branch_code,
        buyer_version=buyer.version,
        description=description[:2000],
        currency=currency,
        total_cents=total_cents,
        net_cents=net,
        vat_cents=vat,
        vat_rate_bp=rate_bp,
    )
    session.add(document)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="document.issued",
        entity_type="document",
        entity_id=document.id,
        details={
            "kind": kind,
            "number": number,
            "invoice_id": invoice_id,
            "refund_id": refund_id,
            "replaces": replaces.number if replaces else None,
        },
    )
    return document


async def _invoice_description(session: AsyncSession, invoice: Invoice) -> str:
    plan_name = None
    if invoice.subscription_id is not None:
        plan_name = (
            await session.execute(
                select(Plan.name)
                .join(Subscription, Subscription.plan_id == Plan.id)
                .where(Subscription.id == invoice.subscription_id)
            )
        ).scalar_one_or_none()
    text = f"ค่าบริการ {plan_name} / {plan_name} subscription" if plan_name else "ค่าบริการ / Service fee"
    if invoice.period_start and invoice.period_end:
        text += f" ({thai_date(invoice.period_start).isoformat()} – {thai_date(invoice.period_end).isoformat()})"
    if invoice.discount_cents > 0 and invoice.subtotal_cents is not None:
        # the total is what was paid; the line says what the discount took off which price
        code = invoice.currency.upper()
        text += (
            f", ส่วนลด / discount {code} {Decimal(invoice.discount_cents).scaleb(-2):,.2f}"
            f" จาก / off {code} {Decimal(invoice.subtotal_cents).scaleb(-2):,.2f}"
        )
    if invoice.reference_number:
        text += f", ref. {invoice.reference_number}"
    return text


async def issue_tax_invoice(
    session: AsyncSession, invoice_id: int, *, now: datetime, actor: str = audit.SYSTEM
) -> Document | None:
    """A paid invoice (Stripe or manual) gets one tax invoice/receipt from its seller; None when it has one
    already, is not paid, or no seller profile applies yet."""
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None or invoice.status not in PAID_STATUSES or invoice.paid_at is None:
        return None
    seller = await sellers.seller_for_invoice(session, invoice)
    if seller is None:
        return None
    customer = await session.get(Customer, invoice.customer_id)
    assert customer is not None  # a foreign key
    return await _write(
        session,
        key=f"tax_invoice:{invoice.id}",
        kind="tax_invoice",
        seller=seller,
        customer=customer,
        invoice_id=invoice.id,
        now=now,
        actor=actor,
        description=await _invoice_description(session, invoice),
        currency=invoice.currency,
        total_cents=invoice.amount_cents,
    )


async def current_version(session: AsyncSession, document: Document) -> Document:
    """The last replacement of a document (the document itself when never replaced)."""
    while True:
        newer = (
            await session.execute(select(Document).where(Document.replaces_id == document.id))
        ).scalar_one_or_none()
        if newer is None:
            return document
        document = newer


async def issue_credit_note(
    session: AsyncSession, refund_id: int, *, now: datetime, actor: str = audit.SYSTEM
) -> Document | None:
    """A succeeded refund gets one credit note that references its invoice's tax invoice (current version); None
    when it has one already, is not succeeded, or the invoice has no tax invoice yet."""
    refund = await session.get(Refund, refund_id)
    if refund is None or refund.status != "succeeded":
        return None
    first = (
        await session.execute(select(Document).where(Document.issue_key == f"tax_invoice:{refund.invoice_id}"))
    ).scalar_one_or_none()
    if first is None:
        return None
    original = await current_version(session, first)
    seller = await sellers.get_seller(session, original.seller_id)
    customer = await session.get(Customer, original.customer_id)
    assert customer is not None
    reason = f": {refund.reason}" if refund.reason else ""
    description = f"คืนเงินตามใบกำกับภาษีเลขที่ {original.number} / Refund against tax invoice {original.number}{reason}"
    return await _write(
        session,
        key=f"credit_note:{refund.id}",
        kind="credit_note",
        seller=seller,
        customer=customer,
        invoice_id=refund.invoice_id,
        now=now,
        actor=actor,
        description=description,
        currency=refund.currency,
        total_cents=refund.amount_cents,
        refund_id=refund.id,
        original_id=original.id,
    )


async def issue_replacement(
    session: AsyncSession, document_id: int, *, now: datetime, actor: str = audit.SYSTEM
) -> Document | None:
    """A document whose buyer details changed since it was issued is re-issued as a new numbered document with the
    same amounts and the new buyer, referencing the one it replaces; None when already replaced or up to date."""
    old = await session.get(Document, document_id)
    if old is None:
        return None
    customer = await session.get(Customer, old.customer_id)
    assert customer is not None
    if (await buyer_of(session, customer)).version <= old.buyer_version:
        return None
    seller = await sellers.get_seller(session, old.seller_id)
    return await _write(
        session,
        key=f"replacement:{old.id}",
        kind=old.kind,
        seller=seller,
        customer=customer,
        invoice_id=old.invoice_id,
        now=now,
        actor=actor,
        description=old.description,
        currency=old.currency,
        total_cents=old.total_cents,
        refund_id=old.refund_id,
        original_id=old.original_document_id,
        replaces=old,
    )


async def due_issues(session: AsyncSession, *, limit: int = 200) -> list[tuple[str, int]]:
    """What still needs a document, oldest first: ("tax_invoice", invoice id), ("credit_note", refund id),
    ("replacement", document id). Invoices come first so a credit note finds its invoice's document."""
    has_invoice_doc = exists().where(Document.invoice_id == Invoice.id, Document.kind == "tax_invoice")
    # an invoice no seller profile applies to waits (and does not crowd the batch) until one is saved
    suite_seller = exists().where(SellerProfile.app_id.is_(None))
    app_seller = exists().where(
        Subscription.id == Invoice.subscription_id, Plan.id == Subscription.plan_id, SellerProfile.app_id == Plan.app_id
    )
    invoices = (
        (
            await session.execute(
                select(Invoice.id)
                .where(
                    Invoice.status.in_(PAID_STATUSES),
                    Invoice.paid_at.is_not(None),
                    ~has_invoice_doc,
                    or_(suite_seller, app_seller),
                )
                .order_by(Invoice.paid_at, Invoice.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    has_note = exists().where(Document.refund_id == Refund.id)
    invoice_doc = exists().where(Document.invoice_id == Refund.invoice_id, Document.kind == "tax_invoice")
    refunds = (
        (
            await session.execute(
                select(Refund.id)
                .where(Refund.status == "succeeded", ~has_note, invoice_doc)
                .order_by(Refund.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    newer = aliased(Document)
    stale = (
        (
            await session.execute(
                select(Document.id)
                .join(BuyerDetails, BuyerDetails.customer_id == Document.customer_id)
                .where(BuyerDetails.version > Document.buyer_version, ~exists().where(newer.replaces_id == Document.id))
                .order_by(Document.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    return (
        [("tax_invoice", i) for i in invoices]
        + [("credit_note", r) for r in refunds]
        + [("replacement", d) for d in stale]
    )


ISSUERS = {"tax_invoice": issue_tax_invoice, "credit_note": issue_credit_note, "replacement": issue_replacement}
