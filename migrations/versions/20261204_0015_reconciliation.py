"""Reconciliation: one row per difference between our books and Stripe's (kind, Stripe object).

Revision ID: 0015_reconciliation
Revises: 0014_dunning_retry
Create Date: 2026-12-04 18:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_reconciliation"
down_revision: str | None = "0014_dunning_retry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "subscription_differs",
    "subscription_missing",
    "invoice_differs",
    "refund_differs",
    "refund_missing",
    "customer_deleted",
)


def upgrade() -> None:
    op.create_table(
        "reconciliation_drifts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("stripe_object_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("ours", postgresql.JSONB(), nullable=False),
        sa.Column("theirs", postgresql.JSONB(), nullable=False),
        sa.Column("expected_event", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), server_default="open", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(255), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")", name="ck_reconciliation_drifts_kind"
        ),
        sa.CheckConstraint("state IN ('open', 'fixed', 'ignored')", name="ck_reconciliation_drifts_state"),
        sa.CheckConstraint(
            "state <> 'ignored' OR char_length(btrim(reason)) BETWEEN 1 AND 2000",
            name="ck_reconciliation_drifts_ignore_reason",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            ondelete="CASCADE",
            name="fk_reconciliation_drifts_customer_id_customers",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_drifts"),
        sa.UniqueConstraint("kind", "stripe_object_id", name="uq_reconciliation_drifts_kind_object"),
    )
    op.create_index("ix_reconciliation_drifts_state_id", "reconciliation_drifts", ["state", sa.text("id DESC")])
    op.create_index(
        "ix_reconciliation_drifts_kind_state_id", "reconciliation_drifts", ["kind", "state", sa.text("id DESC")]
    )
    op.create_index(
        "ix_reconciliation_drifts_customer_open",
        "reconciliation_drifts",
        ["customer_id"],
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_drifts")
