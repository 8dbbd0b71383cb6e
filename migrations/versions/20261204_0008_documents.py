"""Tax documents: seller profiles, buyer details, gap-free counters and immutable documents.

A trigger keeps an issued document as it was: the only update allowed is adding the rendered PDF and its SHA-256
once (to a row that has none); every other update and every delete is refused.

Revision ID: 0008_documents
Revises: 0002e
Create Date: 2026-12-04 15:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_documents"
down_revision: str | None = "0002e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMMUTABLE_FUNCTION = """
CREATE FUNCTION documents_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'an issued document cannot be deleted (issue a replacement instead)';
  END IF;
  IF OLD.pdf IS NULL AND NEW.pdf IS NOT NULL
     AND (to_jsonb(NEW) - ARRAY['pdf', 'sha256', 'rendered_at']) = (to_jsonb(OLD) - ARRAY['pdf', 'sha256', 'rendered_at'])
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'an issued document cannot be changed (issue a replacement instead)';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "seller_profiles",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=True),
        sa.Column("legal_name", sa.String(length=1024), nullable=False),
        sa.Column("legal_name_en", sa.String(length=1024), nullable=True),
        sa.Column("address", sa.String(length=2000), nullable=False),
        sa.Column("address_en", sa.String(length=2000), nullable=True),
        sa.Column("tax_id", sa.String(length=13), nullable=False),
        sa.Column("branch_code", sa.String(length=5), server_default="00000", nullable=False),
        sa.Column("vat_registered", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("vat_rate_bp", sa.BigInteger(), server_default="700", nullable=False),
        sa.Column("prices_include_vat", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_mime", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("tax_id ~ '^[0-9]{13}$'", name=op.f("ck_seller_profiles_tax_id_digits")),
        sa.CheckConstraint("branch_code ~ '^[0-9]{5}$'", name=op.f("ck_seller_profiles_branch_code_digits")),
        sa.CheckConstraint("vat_rate_bp BETWEEN 0 AND 10000", name=op.f("ck_seller_profiles_vat_rate_range")),
        sa.CheckConstraint(
            "char_length(btrim(legal_name)) BETWEEN 1 AND 1024", name=op.f("ck_seller_profiles_legal_name_length")
        ),
        sa.CheckConstraint(
            "char_length(btrim(address)) BETWEEN 1 AND 2000", name=op.f("ck_seller_profiles_address_length")
        ),
        sa.CheckConstraint("logo IS NULL OR octet_length(logo) <= 524288", name=op.f("ck_seller_profiles_logo_size")),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_seller_profiles_app_id_apps"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seller_profiles")),
        sa.UniqueConstraint("app_id", name=op.f("uq_seller_profiles_app_id")),
    )
    op.create_index(
        "uq_seller_profiles_suite_wide",
        "seller_profiles",
        [sa.text("(app_id IS NULL)")],
        unique=True,
        postgresql_where=sa.text("app_id IS NULL"),
    )

    op.create_table(
        "buyer_details",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("company_name", sa.String(length=1024), nullable=True),
        sa.Column("address", sa.String(length=2000), nullable=True),
        sa.Column("tax_id", sa.String(length=13), nullable=True),
        sa.Column("branch_code", sa.String(length=5), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("tax_id IS NULL OR tax_id ~ '^[0-9]{13}$'", name=op.f("ck_buyer_details_tax_id_digits")),
        sa.CheckConstraint(
            "branch_code IS NULL OR branch_code ~ '^[0-9]{5}$'", name=op.f("ck_buyer_details_branch_code_digits")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_buyer_details_version_positive")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_buyer_details_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_buyer_details")),
    )

    op.create_table(
        "document_counters",
        sa.Column("seller_id", sa.BigInteger(), nullable=False),
        sa.Column("series", sa.String(length=2), nullable=False),
        sa.Column("year", sa.BigInteger(), nullable=False),
        sa.Column("next_number", sa.BigInteger(), server_default="1", nullable=False),
        sa.CheckConstraint("series IN ('TI', 'CN')", name=op.f("ck_document_counters_series")),
        sa.CheckConstraint("next_number >= 1", name=op.f("ck_document_counters_next_number_positive")),
        sa.ForeignKeyConstraint(
            ["seller_id"],
            ["seller_profiles.id"],
            name=op.f("fk_document_counters_seller_id_seller_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("seller_id", "series", "year", name=op.f("pk_document_counters")),
    )

    op.create_table(
        "documents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("issue_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seller_id", sa.BigInteger(), nullable=False),
        sa.Column("series", sa.String(length=2), nullable=False),
        sa.Column("year", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("original_document_id", sa.BigInteger(), nullable=True),
        sa.Column("replaces_id", sa.BigInteger(), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("seller_snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("buyer_name", sa.String(length=1024), nullable=False),
        sa.Column("buyer_address", sa.String(length=2000), nullable=True),
        sa.Column("buyer_tax_id", sa.String(length=13), nullable=True),
        sa.Column("buyer_branch_code", sa.String(length=5), nullable=True),
        sa.Column("buyer_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("net_cents", sa.BigInteger(), nullable=False),
        sa.Column("vat_cents", sa.BigInteger(), nullable=False),
        sa.Column("vat_rate_bp", sa.BigInteger(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('tax_invoice', 'credit_note')", name=op.f("ck_documents_kind")),
        sa.CheckConstraint("series IN ('TI', 'CN')", name=op.f("ck_documents_series")),
        sa.CheckConstraint("currency IN ('thb', 'usd')", name=op.f("ck_documents_currency")),
        sa.CheckConstraint(
            "(kind = 'credit_note') = (refund_id IS NOT NULL)", name=op.f("ck_documents_refund_for_credit_note")
        ),
        sa.CheckConstraint(
            "(kind = 'credit_note') = (original_document_id IS NOT NULL)",
            name=op.f("ck_documents_credit_note_references_invoice"),
        ),
        sa.CheckConstraint(
            "total_cents >= 0 AND net_cents >= 0 AND vat_cents >= 0 AND net_cents + vat_cents = total_cents",
            name=op.f("ck_documents_amounts_add_up"),
        ),
        sa.CheckConstraint("(pdf IS NULL) = (sha256 IS NULL)", name=op.f("ck_documents_pdf_with_hash")),
        sa.ForeignKeyConstraint(
            ["seller_id"],
            ["seller_profiles.id"],
            name=op.f("fk_documents_seller_id_seller_profiles"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_documents_customer_id_customers"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_documents_invoice_id_invoices"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_documents_refund_id_refunds"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["original_document_id"],
            ["documents.id"],
            name=op.f("fk_documents_original_document_id_documents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"], ["documents.id"], name=op.f("fk_documents_replaces_id_documents"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("issue_key", name=op.f("uq_documents_issue_key")),
        sa.UniqueConstraint("replaces_id", name=op.f("uq_documents_replaces_id")),
    )
    op.create_index("uq_documents_seller_number", "documents", ["seller_id", "number"], unique=True)
    op.create_index("ix_documents_invoice_id", "documents", ["invoice_id", "kind"])
    op.create_index(
        "ix_documents_refund_id", "documents", ["refund_id"], postgresql_where=sa.text("refund_id IS NOT NULL")
    )
    op.create_index("ix_documents_customer_id", "documents", ["customer_id", sa.text("id DESC")])
    op.create_index("ix_documents_unrendered", "documents", ["id"], postgresql_where=sa.text("pdf IS NULL"))
    op.create_index("ix_documents_seller_issue_date", "documents", ["seller_id", "issue_date"])
    op.execute(IMMUTABLE_FUNCTION)
    op.execute(
        "CREATE TRIGGER documents_immutable BEFORE UPDATE OR DELETE ON documents "
        "FOR EACH ROW EXECUTE FUNCTION documents_immutable()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS documents_immutable ON documents")
    op.execute("DROP FUNCTION IF EXISTS documents_immutable()")
    op.drop_table("documents")
    op.drop_table("document_counters")
    op.drop_table("buyer_details")
    op.drop_index(
        "uq_seller_profiles_suite_wide", table_name="seller_profiles", postgresql_where=sa.text("app_id IS NULL")
    )
    op.drop_table("seller_profiles")
