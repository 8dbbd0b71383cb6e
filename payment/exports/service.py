"""Exports: who may export (one place), the audit row, and the CSV streamed batch by batch.

Memory stays flat whatever the size: each batch of rows is read in a short session (keyset on the id, newest
first, like the admin lists; works behind PgBouncer, unlike a server-side cursor held across the response), encoded
and handed to the response before the next is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Database
from payment.errors import NotFound
from payment.exports.csv_format import BOM, encode_rows, minor_to_decimal
from payment.exports.tables import TABLES
from payment.models import Document, SellerProfile

BATCH_ROWS = 2000
KINDS = (*TABLES, "vat_summary")


async def start_export(
    session: AsyncSession, kind: str, filters: Mapping[str, str], *, actor: str, ip: str | None = None
) -> str:
    """An export is allowed for the role and recorded (kind and filters) before any row leaves; returns the file
    name."""
    require(actor, Permission.EXPORT)
    if kind not in KINDS:
        raise NotFound("There is no such export.")
    await audit.record(
        session,
        actor=actor,
        action="export.started",
        entity_type="export",
        entity_id=kind,
        ip=ip,
        details={"filters": dict(filters)},
    )
    return f"{kind}-{date.today().isoformat()}.csv"


async def stream_table(
    db: Database, kind: str, filters: Mapping[str, str], *, batch: int = BATCH_ROWS
) -> AsyncIterator[bytes]:
    """The CSV of one table with the list's filters: BOM and header first, then one chunk per batch."""
    table = TABLES[kind]
    yield BOM + encode_rows([table.header])
    after: int | None = None
    while True:
        stmt = table.query(filters)
        if after is not None:
            stmt = stmt.where(table.key < after)
        async with db.session() as session:
            rows = (await session.execute(stmt.order_by(table.key.desc()).limit(batch))).all()
        if not rows:
            return
        yield encode_rows(table.cells(row) for row in rows)
        if len(rows) < batch:
            return
        after = int(rows[-1][0])


VAT_HEADER = (
    "seller_id",
    "seller",
    "seller_tax_id",
    "branch_code",
    "month",
    "currency",
    "tax_invoices",
    "sales_before_vat",
    "output_vat",
    "credit_notes",
    "credits_before_vat",
    "vat_credited",
    "net_output_vat",
)


async def vat_summary_rows(
    session: AsyncSession, *, seller_id: int | None = None, year: int | None = None
) -> list[tuple[object, ...]]:
    """Output VAT by seller, month of issue and currency: tax invoices less credit notes. A replacement repeats
    the amounts of the document it replaces, so only first issues count."""
    month = func.to_char(Document.issue_date, "YYYY-MM")
    is_invoice = Document.kind == "tax_invoice"
    is_note = Document.kind == "credit_note"

    def total(column: InstrumentedAttribute[int], when: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(column).filter(when), 0)

    stmt = (
        select(
            SellerProfile.id,
            SellerProfile.legal_name,
            SellerProfile.tax_id,
            SellerProfile.branch_code,
            month.label("month"),
            Document.currency,
            func.count().filter(is_invoice),
            total(Document.net_cents, is_invoice),
            total(Document.vat_cents, is_invoice),
            func.count().filter(is_note),
            total(Document.net_cents, is_note),
            total(Document.vat_cents, is_note),
        )
        .join(SellerProfile, SellerProfile.id == Document.seller_id)
        .where(Document.replaces_id.is_(None))
        .group_by(SellerProfile.id, month, Document.currency)
        .order_by(SellerProfile.id, month, Document.currency)
    )
    if seller_id is not None:
        stmt = stmt.where(Document.seller_id == seller_id)
    if year is not None:
        stmt = stmt.where(cast(func.extract("year", Document.issue_date), Integer) == year)
    out: list[tuple[object, ...]] = []
    for sid, name, tax_id, branch, mon, currency, invoices, net, vat, notes, credit_net, credit_vat in (
        await session.execute(stmt)
    ).all():
        out.append(
            (
                sid,
                name,
                tax_id,
                branch,
                mon,
                currency,
                invoices,
                minor_to_decimal(net),
                minor_to_decimal(vat),
                notes,
                minor_to_decimal(credit_net),
                minor_to_decimal(credit_vat),
                minor_to_decimal(vat - credit_vat),
            )
        )
    return out


async def stream_vat_summary(db: Database, filters: Mapping[str, str]) -> AsyncIterator[bytes]:
    """The monthly VAT summary as CSV (a few rows per seller and month: read at once)."""
    seller = filters.get("seller", "")
    year = filters.get("year", "")
    async with db.session() as session:
        rows = await vat_summary_rows(
            session,
            seller_id=int(seller) if seller.isdigit() else None,
            year=int(year) if year.isdigit() and len(year) == 4 else None,
        )
    yield BOM + encode_rows([VAT_HEADER, *rows])  # type: ignore[list-item]


def stream(db: Database, kind: str, filters: Mapping[str, str]) -> AsyncIterator[bytes]:
    return stream_vat_summary(db, filters) if kind == "vat_summary" else stream_table(db, kind, filters)
