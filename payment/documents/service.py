"""What people do with documents: give buyer details, list and download documents (every download audited)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.documents.rendering import Rendered
from payment.documents.rules import check_branch_code, check_tax_id
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import BuyerDetails, Customer, Document, utcnow


def _optional(value: str, label: str, field: str, limit: int) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise ValidationError(f"{label} must be at most {limit} characters.", field=field)
    return value or None


async def save_buyer_details(
    session: AsyncSession,
    customer: Customer,
    *,
    company_name: str,
    address: str,
    tax_id: str,
    branch_code: str = "",
    actor: str,
    ip: str | None = None,
) -> BuyerDetails:
    """A buyer may give a company name, address and tax id (valid check digit) at any time; a change makes the
    documents already issued to them due for re-issue as replacements (the issuing job does it)."""
    company = _optional(company_name, "Company name", "company_name", 1024)
    addr = _optional(address, "Address", "address", 2000)
    tax = check_tax_id(tax_id) if (tax_id or "").strip() else None
    branch = check_branch_code(branch_code) if tax else None
    if tax and not (company and addr):
        raise ValidationError(
            "With a tax id, give the company name and address too (both are printed).",
            field="company_name" if not company else "address",
        )
    details = await session.get(BuyerDetails, customer.id, with_for_update=True)
    if details is None:
        details = BuyerDetails(customer_id=customer.id, version=1)
        session.add(details)
    elif (details.company_name, details.address, details.tax_id, details.branch_code) == (company, addr, tax, branch):
        return details
    else:
        details.version += 1
    details.company_name, details.address, details.tax_id, details.branch_code = company, addr, tax, branch
    details.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="buyer_details.saved",
        entity_type="customer",
        entity_id=customer.id,
        ip=ip,
        details={"company_name": company, "tax_id": tax, "version": details.version},
    )
    return details


async def buyer_details_of(session: AsyncSession, customer_id: int) -> BuyerDetails | None:
    return await session.get(BuyerDetails, customer_id)


async def documents_for(
    session: AsyncSession,
    *,
    invoice_id: int | None = None,
    refund_id: int | None = None,
    customer_id: int | None = None,
    limit: int = 200,
) -> list[Document]:
    """Documents of an invoice (its tax invoice and credit notes), a refund or a customer, newest first."""
    query = select(Document).order_by(Document.id.desc()).limit(limit)
    if invoice_id is not None:
        query = query.where(Document.invoice_id == invoice_id)
    if refund_id is not None:
        query = query.where(Document.refund_id == refund_id)
    if customer_id is not None:
        query = query.where(Document.customer_id == customer_id)
    return list((await session.execute(query)).scalars())


async def download(
    session: AsyncSession, document_id: int, *, actor: str, customer_id: int | None = None, ip: str | None = None
) -> Document:
    """A rendered document, for an admin or for the customer it was issued to (anyone else: not found); each
    download is audited."""
    document = await session.get(Document, document_id)
    if document is None or (customer_id is not None and document.customer_id != customer_id):
        raise NotFound("This document does not exist.")
    if document.pdf is None:
        raise Conflict("This document is being prepared; try again in a minute.")
    await audit.record(
        session,
        actor=actor,
        action="document.downloaded",
        entity_type="document",
        entity_id=document.id,
        ip=ip,
        details={"number": document.number, "sha256": document.sha256},
    )
    return document


async def store_pdf(session: AsyncSession, document_id: int, rendered: Rendered) -> bool:
    """The rendered PDF is attached once; a document that already has one keeps it (False)."""
    document = await session.get(Document, document_id, with_for_update=True)
    if document is None or document.pdf is not None:
        return False
    document.pdf, document.sha256, document.rendered_at = rendered.pdf, rendered.sha256, utcnow()
    await session.flush()
    return True
