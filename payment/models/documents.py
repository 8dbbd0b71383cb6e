"""Tax documents: who sells (seller profiles), who buys (buyer details), the numbered documents and their counters.

A document row is written once with its number and every printed value (a snapshot); its PDF is added once by the
rendering job. A trigger (migration 0008_documents) refuses any other change and any delete: a correction is a new
document that references the one it replaces.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, LargeBinary, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.accounts import App
from payment.models.base import CURRENCIES, Base, Timestamps, in_list

DOCUMENT_KINDS = ("tax_invoice", "credit_note")
SERIES = ("TI", "CN")


class SellerProfile(Timestamps, Base):
    """The business that issues documents: for one app, or suite-wide when app_id is NULL."""

    __tablename__ = "seller_profiles"
    __table_args__ = (
        CheckConstraint("tax_id ~ '^[0-9]{13}$'", name="tax_id_digits"),
        CheckConstraint("branch_code ~ '^[0-9]{5}$'", name="branch_code_digits"),
        CheckConstraint("vat_rate_bp BETWEEN 0 AND 10000", name="vat_rate_range"),
        CheckConstraint("char_length(btrim(legal_name)) BETWEEN 1 AND 1024", name="legal_name_length"),
        CheckConstraint("char_length(btrim(address)) BETWEEN 1 AND 2000", name="address_length"),
        CheckConstraint("logo IS NULL OR octet_length(logo) <= 524288", name="logo_size"),
        # at most one suite-wide profile
        Index(
            "uq_seller_profiles_suite_wide",
            text("(app_id IS NULL)"),
            unique=True,
            postgresql_where=text("app_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"), unique=True)
    legal_name: Mapped[str] = mapped_column(String(1024))
    legal_name_en: Mapped[str | None] = mapped_column(String(1024))
    address: Mapped[str] = mapped_column(String(2000))
    address_en: Mapped[str | None] = mapped_column(String(2000))
    tax_id: Mapped[str] = mapped_column(String(13))
    branch_code: Mapped[str] = mapped_column(String(5), default="00000", server_default="00000")
    vat_registered: Mapped[bool] = mapped_column(default=True, server_default="true")
    vat_rate_bp: Mapped[int] = mapped_column(default=700, server_default="700")
    prices_include_vat: Mapped[bool] = mapped_column(default=True, server_default="true")
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_mime: Mapped[str | None] = mapped_column(String(32))

    app: Mapped[App | None] = relationship()

    @property
    def is_head_office(self) -> bool:
        return self.branch_code == "00000"

    def __str__(self) -> str:
        return self.legal_name


class BuyerDetails(Base):
    """What an end user asked to be printed as the buyer; `version` grows on every change."""

    __tablename__ = "buyer_details"
    __table_args__ = (
        CheckConstraint("tax_id IS NULL OR tax_id ~ '^[0-9]{13}$'", name="tax_id_digits"),
        CheckConstraint("branch_code IS NULL OR branch_code ~ '^[0-9]{5}$'", name="branch_code_digits"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    company_name: Mapped[str | None] = mapped_column(String(1024))
    address: Mapped[str | None] = mapped_column(String(2000))
    tax_id: Mapped[str | None] = mapped_column(String(13))
    branch_code: Mapped[str | None] = mapped_column(String(5))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DocumentCounter(Base):
    """The next number of one series of one seller in one year; locked FOR UPDATE while a document takes it."""

    __tablename__ = "document_counters"
    __table_args__ = (
        CheckConstraint(in_list("series", SERIES), name="series"),
        CheckConstraint("next_number >= 1", name="next_number_positive"),
    )

    seller_id: Mapped[int] = mapped_column(ForeignKey("seller_profiles.id", ondelete="RESTRICT"), primary_key=True)
    series: Mapped[str] = mapped_column(String(2), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1, server_default="1")


class Document(Base):
    """One issued tax invoice/receipt or credit note, with everything printed on it."""

    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint(in_list("kind", DOCUMENT_KINDS), name="kind"),
        CheckConstraint(in_list("series", SERIES), name="series"),
        CheckConstraint(in_list("currency", CURRENCIES), name="currency"),
        CheckConstraint("(kind = 'credit_note') = (refund_id IS NOT NULL)", name="refund_for_credit_note"),
        CheckConstraint(
            "(kind = 'credit_note') = (original_document_id IS NOT NULL)", name="credit_note_references_invoice"
        ),
        CheckConstraint(
            "total_cents >= 0 AND net_cents >= 0 AND vat_cents >= 0 AND net_cents + vat_cents = total_cents",
            name="amounts_add_up",
        ),
        CheckConstraint("(pdf IS NULL) = (sha256 IS NULL)", name="pdf_with_hash"),
        Index("uq_documents_seller_number", "seller_id", "number", unique=True),
        Index("ix_documents_invoice_id", "invoice_id", "kind"),
        Index("ix_documents_refund_id", "refund_id", postgresql_where=text("refund_id IS NOT NULL")),
        Index("ix_documents_customer_id", "customer_id", text("id DESC")),
        Index("ix_documents_unrendered", "id", postgresql_where=text("pdf IS NULL")),
        Index("ix_documents_seller_issue_date", "seller_id", "issue_date"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    # one document per (kind, invoice/refund) and one replacement per document: the job's idempotency key
    issue_key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    seller_id: Mapped[int] = mapped_column(ForeignKey("seller_profiles.id", ondelete="RESTRICT"))
    series: Mapped[str] = mapped_column(String(2))
    year: Mapped[int]
    sequence: Mapped[int]
    number: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="RESTRICT"))
    original_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="RESTRICT"))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="RESTRICT"), unique=True)
    issue_date: Mapped[date]
    issued_at: Mapped[datetime] = mapped_column(server_default=func.now())
    seller_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    buyer_name: Mapped[str] = mapped_column(String(1024))
    buyer_address: Mapped[str | None] = mapped_column(String(2000))
    buyer_tax_id: Mapped[str | None] = mapped_column(String(13))
    buyer_branch_code: Mapped[str | None] = mapped_column(String(5))
    buyer_version: Mapped[int] = mapped_column(default=0, server_default="0")
    description: Mapped[str] = mapped_column(String(2000))
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int]
    net_cents: Mapped[int]
    vat_cents: Mapped[int]
    vat_rate_bp: Mapped[int]
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64))
    rendered_at: Mapped[datetime | None]

    seller: Mapped[SellerProfile] = relationship()

    def __str__(self) -> str:
        return self.number
