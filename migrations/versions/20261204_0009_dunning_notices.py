"""Dunning and end-user notices: each app's grace policy, and one dunning case per failed invoice.

Notices themselves go through the existing `outbox_messages` (kind `email`), so no table is added for them.

Revision ID: 0009_dunning_notices
Revises: 0010_outgoing_webhooks
Create Date: 2026-12-04 16:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_dunning_notices"
down_revision: str | None = "0004_admin_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("apps", sa.Column("grace_days", sa.BigInteger(), server_default="7", nullable=False))
    op.add_column("apps", sa.Column("after_grace", sa.String(16), server_default="blocked", nullable=False))
    op.create_check_constraint("ck_apps_grace_days_range", "apps", "grace_days BETWEEN 0 AND 60")
    op.create_check_constraint("ck_apps_after_grace", "apps", "after_grace IN ('blocked', 'free')")
    op.create_table(
        "dunning_cases",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "close_reason IS NULL OR close_reason IN ('paid', 'recovered', 'ended', 'voided')",
            name="ck_dunning_cases_close_reason",
        ),
        sa.CheckConstraint("(closed_at IS NULL) = (close_reason IS NULL)", name="ck_dunning_cases_closed_with_reason"),
        sa.CheckConstraint("attempts >= 0", name="ck_dunning_cases_attempts_not_negative"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], ondelete="CASCADE", name="fk_dunning_cases_invoice_id_invoices"
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            ondelete="CASCADE",
            name="fk_dunning_cases_subscription_id_subscriptions",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], ondelete="CASCADE", name="fk_dunning_cases_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dunning_cases"),
        sa.UniqueConstraint("invoice_id", name="uq_dunning_cases_invoice_id"),
    )
    op.create_index("ix_dunning_cases_subscription_id", "dunning_cases", ["subscription_id"])
    op.create_index("ix_dunning_cases_customer_id", "dunning_cases", ["customer_id", sa.text("id DESC")])
    op.create_index(
        "ix_dunning_cases_open", "dunning_cases", ["grace_ends_at"], postgresql_where=sa.text("closed_at IS NULL")
    )


def downgrade() -> None:
    op.drop_table("dunning_cases")
    op.drop_constraint("ck_apps_after_grace", "apps", type_="check")
    op.drop_constraint("ck_apps_grace_days_range", "apps", type_="check")
    op.drop_column("apps", "after_grace")
    op.drop_column("apps", "grace_days")
