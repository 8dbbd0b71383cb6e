"""Trials and promotion codes: a plan's trial terms, the trials granted (with the card's fingerprint), coupons and
promotion codes, the discount of each subscription and invoice.

Revision ID: 0017_trials_promotions
Revises: 0015_reconciliation
Create Date: 2026-12-04 18:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_trials_promotions"
down_revision: str | None = "0015_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("trial_days", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("plans", sa.Column("trial_requires_card", sa.Boolean(), server_default="true", nullable=False))
    op.add_column("plans", sa.Column("trial_end_behavior", sa.String(16), server_default="cancel", nullable=False))
    op.create_check_constraint("ck_plans_trial_days_range", "plans", "trial_days BETWEEN 0 AND 365")
    op.create_check_constraint("ck_plans_trial_end_behavior", "plans", "trial_end_behavior IN ('cancel', 'pause')")
    op.add_column("subscriptions", sa.Column("discount_percent_off", sa.Numeric(5, 2), nullable=True))
    op.add_column("subscriptions", sa.Column("discount_amount_off_cents", sa.BigInteger(), nullable=True))
    op.add_column("subscriptions", sa.Column("discount_ends_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_subscriptions_discounted",
        "subscriptions",
        ["status"],
        postgresql_where=sa.text("discount_percent_off IS NOT NULL OR discount_amount_off_cents IS NOT NULL"),
    )
    op.add_column("invoices", sa.Column("subtotal_cents", sa.BigInteger(), nullable=True))
    op.add_column("invoices", sa.Column("discount_cents", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "trial_grants",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("card_fingerprint", sa.String(64), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("refused_reason", sa.String(32), nullable=True),
        sa.Column("ended_early_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_error", sa.String(1000), nullable=True),
        sa.CheckConstraint(
            "refused_reason IS NULL OR refused_reason IN ('customer_had_trial', 'card_had_trial')",
            name=op.f("ck_trial_grants_refused_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_trial_grants_customer_id_customers"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_trial_grants_app_id_apps"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_trial_grants_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_grants")),
        sa.UniqueConstraint("subscription_id", name=op.f("uq_trial_grants_subscription_id")),
    )
    op.create_index("ix_trial_grants_customer_app", "trial_grants", ["customer_id", "app_id"])
    op.create_index("ix_trial_grants_card_fingerprint", "trial_grants", ["card_fingerprint"])
    op.create_index(
        "ix_trial_grants_to_end",
        "trial_grants",
        ["id"],
        postgresql_where=sa.text("refused_reason IS NOT NULL AND ended_early_at IS NULL"),
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=True),
        sa.Column("percent_off", sa.Numeric(5, 2), nullable=True),
        sa.Column("amount_off_cents", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("duration", sa.String(16), nullable=False),
        sa.Column("duration_in_months", sa.BigInteger(), nullable=True),
        sa.Column("redeem_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_redemptions", sa.BigInteger(), nullable=True),
        sa.Column("stripe_coupon_id", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 40", name=op.f("ck_coupons_name_length")),
        sa.CheckConstraint(
            "(percent_off IS NOT NULL AND percent_off > 0 AND percent_off <= 100 AND amount_off_cents IS NULL "
            "AND currency IS NULL) OR (percent_off IS NULL AND amount_off_cents > 0 AND currency IS NOT NULL)",
            name=op.f("ck_coupons_percent_or_amount"),
        ),
        sa.CheckConstraint("currency IS NULL OR currency IN ('thb', 'usd')", name=op.f("ck_coupons_currency")),
        sa.CheckConstraint("duration IN ('once', 'repeating', 'forever')", name=op.f("ck_coupons_duration")),
        sa.CheckConstraint(
            "(duration = 'repeating') = (duration_in_months IS NOT NULL)",
            name=op.f("ck_coupons_months_only_when_repeating"),
        ),
        sa.CheckConstraint(
            "duration_in_months IS NULL OR duration_in_months BETWEEN 1 AND 36", name=op.f("ck_coupons_months_range")
        ),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR max_redemptions > 0", name=op.f("ck_coupons_max_redemptions_positive")
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_coupons_app_id_apps"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("stripe_coupon_id", name=op.f("uq_coupons_stripe_coupon_id")),
    )
    op.create_index(op.f("ix_coupons_app_id"), "coupons", ["app_id"])
    op.create_table(
        "promotion_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("coupon_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("stripe_promotion_code_id", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_redemptions", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("code ~ '^[A-Za-z0-9_-]{1,64}$'", name=op.f("ck_promotion_codes_code_format")),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR max_redemptions > 0", name=op.f("ck_promotion_codes_max_redemptions_positive")
        ),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_promotion_codes_coupon_id_coupons"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_codes")),
        sa.UniqueConstraint("stripe_promotion_code_id", name="uq_promotion_codes_stripe_promotion_code_id"),
    )
    op.create_index(op.f("ix_promotion_codes_coupon_id"), "promotion_codes", ["coupon_id"])
    op.create_index("uq_promotion_codes_code_lower", "promotion_codes", [sa.text("lower(code)")], unique=True)


def downgrade() -> None:
    op.drop_table("promotion_codes")
    op.drop_table("coupons")
    op.drop_table("trial_grants")
    op.drop_column("invoices", "discount_cents")
    op.drop_column("invoices", "subtotal_cents")
    op.drop_index("ix_subscriptions_discounted", table_name="subscriptions")
    op.drop_column("subscriptions", "discount_ends_at")
    op.drop_column("subscriptions", "discount_amount_off_cents")
    op.drop_column("subscriptions", "discount_percent_off")
    op.drop_constraint("ck_plans_trial_end_behavior", "plans", type_="check")
    op.drop_constraint("ck_plans_trial_days_range", "plans", type_="check")
    op.drop_column("plans", "trial_end_behavior")
    op.drop_column("plans", "trial_requires_card")
    op.drop_column("plans", "trial_days")
