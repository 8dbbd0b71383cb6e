"""Initial schema: every table of the data model, and Procrastinate's job queue.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 06:48:01.770103
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from payment.jobs.schema import create_procrastinate_schema, drop_procrastinate_schema

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_procrastinate_schema(op.get_bind())
    op.create_table(
        "admin_users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("password_hash", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="admin", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("email ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'", name=op.f("ck_admin_users_email_format")),
        sa.CheckConstraint("role IN ('admin', 'viewer')", name=op.f("ck_admin_users_role")),
        sa.CheckConstraint("char_length(email) <= 320", name=op.f("ck_admin_users_email_length")),
        sa.CheckConstraint("char_length(name) <= 1024", name=op.f("ck_admin_users_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
    )
    op.create_index("uq_admin_users_email_lower", "admin_users", [sa.literal_column("lower(email)")], unique=True)
    op.create_table(
        "apps",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("return_url", sa.String(length=2048), nullable=False),
        sa.Column("api_key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("api_key_encrypted", sa.String(length=512), nullable=False),
        sa.Column("api_key_hint", sa.String(length=32), nullable=False),
        sa.Column("api_key_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("return_url ~* '^https?://[^\\s]+$'", name=op.f("ck_apps_return_url_scheme")),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name=op.f("ck_apps_slug_format")),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 1024", name=op.f("ck_apps_name_length")),
        sa.CheckConstraint("char_length(slug) <= 128", name=op.f("ck_apps_slug_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_apps_api_key_hash")),
        sa.UniqueConstraint("slug", name=op.f("uq_apps_slug")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=255), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action", sa.literal_column("id DESC")], unique=False)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", sa.literal_column("id DESC")], unique=False)
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index(
        "ix_audit_log_entity", "audit_log", ["entity_type", "entity_id", sa.literal_column("id DESC")], unique=False
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_user_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=1024), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "email IS NULL OR email ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'", name=op.f("ck_customers_email_format")
        ),
        sa.CheckConstraint(
            "char_length(external_user_id) BETWEEN 1 AND 255", name=op.f("ck_customers_external_user_id_length")
        ),
        sa.CheckConstraint("name IS NULL OR char_length(name) <= 1024", name=op.f("ck_customers_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("external_user_id", name=op.f("uq_customers_external_user_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_customers_stripe_customer_id")),
    )
    op.create_index("ix_customers_email_lower", "customers", [sa.literal_column("lower(email)")], unique=False)
    op.create_table(
        "rate_limit_hits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_hits")),
    )
    op.create_index("ix_rate_limit_hits_key_at", "rate_limit_hits", ["key", "at"], unique=False)
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("received_via", sa.String(length=16), server_default="webhook", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'handled', 'ignored', 'failed')", name=op.f("ck_stripe_events_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("stripe_event_id", name=op.f("uq_stripe_events_stripe_event_id")),
    )
    op.create_index("ix_stripe_events_created", "stripe_events", ["stripe_created_at"], unique=False)
    op.create_index("ix_stripe_events_object", "stripe_events", ["object_id"], unique=False)
    op.create_index(
        "ix_stripe_events_status_id", "stripe_events", ["status", sa.literal_column("id DESC")], unique=False
    )
    op.create_index(
        "ix_stripe_events_unhandled",
        "stripe_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_table(
        "billing_sessions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_billing_sessions_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_billing_sessions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_billing_sessions_token_hash")),
    )
    op.create_index(op.f("ix_billing_sessions_app_id"), "billing_sessions", ["app_id"], unique=False)
    op.create_index(op.f("ix_billing_sessions_customer_id"), "billing_sessions", ["customer_id"], unique=False)
    op.create_index("ix_billing_sessions_expires_at", "billing_sessions", ["expires_at"], unique=False)
    op.create_table(
        "plans",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("description", sa.String(length=4000), server_default="", nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), server_default="month", nullable=False),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("sort_order", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("features", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("currency IN ('thb', 'usd')", name=op.f("ck_plans_currency")),
        sa.CheckConstraint("interval IN ('month', 'year')", name=op.f("ck_plans_interval")),
        sa.CheckConstraint("jsonb_typeof(features) = 'array'", name=op.f("ck_plans_features_array")),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name=op.f("ck_plans_slug_format")),
        sa.CheckConstraint(
            "stripe_price_id IS NULL OR stripe_price_id ~ '^price_[A-Za-z0-9_]+$'",
            name=op.f("ck_plans_stripe_price_id_format"),
        ),
        sa.CheckConstraint(
            "(price_cents = 0 AND stripe_price_id IS NULL) OR (price_cents > 0 AND stripe_price_id IS NOT NULL)",
            name=op.f("ck_plans_stripe_price_for_paid_only"),
        ),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 1024", name=op.f("ck_plans_name_length")),
        sa.CheckConstraint("char_length(slug) <= 128", name=op.f("ck_plans_slug_length")),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_plans_price_not_negative")),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_plans_app_id_apps"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("slug", name=op.f("uq_plans_slug")),
        sa.UniqueConstraint("stripe_price_id", name=op.f("uq_plans_stripe_price_id")),
    )
    op.create_index(op.f("ix_plans_app_id"), "plans", ["app_id"], unique=False)
    op.create_index("ix_plans_listing", "plans", ["active", "sort_order", "id"], unique=False)
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_checkout_session_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('open', 'complete', 'expired')", name=op.f("ck_checkout_sessions_status")),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_checkout_sessions_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_checkout_sessions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_checkout_sessions_plan_id_plans"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint("stripe_checkout_session_id", name=op.f("uq_checkout_sessions_stripe_checkout_session_id")),
    )
    op.create_index(
        "ix_checkout_sessions_open",
        "checkout_sessions",
        ["customer_id"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_stripe_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("paid_currency", sa.String(length=3), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(source = 'stripe') = (stripe_subscription_id IS NOT NULL)",
            name=op.f("ck_subscriptions_stripe_id_for_stripe"),
        ),
        sa.CheckConstraint("source IN ('stripe', 'manual', 'grant')", name=op.f("ck_subscriptions_source")),
        sa.CheckConstraint(
            "status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused', 'expired')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.CheckConstraint(
            "current_period_end IS NULL OR current_period_start IS NULL OR current_period_end >= current_period_start",
            name=op.f("ck_subscriptions_period_order"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_subscriptions_customer_id_customers"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("stripe_subscription_id", name=op.f("uq_subscriptions_stripe_subscription_id")),
    )
    op.create_index("ix_subscriptions_customer_id", "subscriptions", ["customer_id", "status"], unique=False)
    op.create_index(
        "ix_subscriptions_ended_at",
        "subscriptions",
        ["ended_at"],
        unique=False,
        postgresql_where=sa.text("ended_at IS NOT NULL"),
    )
    op.create_index(
        "ix_subscriptions_expiry",
        "subscriptions",
        ["current_period_end"],
        unique=False,
        postgresql_where=sa.text("source <> 'stripe' AND status IN ('active', 'trialing')"),
    )
    op.create_index(
        "ix_subscriptions_plan_id_id", "subscriptions", ["plan_id", sa.literal_column("id DESC")], unique=False
    )
    op.create_index(
        "ix_subscriptions_source_id", "subscriptions", ["source", sa.literal_column("id DESC")], unique=False
    )
    op.create_index(
        "ix_subscriptions_status_id", "subscriptions", ["status", sa.literal_column("id DESC")], unique=False
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_method", sa.String(length=32), nullable=True),
        sa.Column("reference_number", sa.String(length=255), nullable=True),
        sa.Column("amount_refunded_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_payment_error", sa.String(length=1000), nullable=True),
        sa.Column("recorded_by", sa.String(length=255), nullable=True),
        sa.Column("last_stripe_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(source = 'stripe') = (stripe_invoice_id IS NOT NULL)", name=op.f("ck_invoices_stripe_id_for_stripe")
        ),
        sa.CheckConstraint("currency IN ('thb', 'usd')", name=op.f("ck_invoices_currency")),
        sa.CheckConstraint(
            "payment_method IS NULL OR payment_method IN ('card', 'bank_transfer', 'wire', 'cash', 'other')",
            name=op.f("ck_invoices_payment_method"),
        ),
        sa.CheckConstraint(
            "source = 'stripe' OR (reference_number IS NOT NULL AND payment_method IS NOT NULL)",
            name=op.f("ck_invoices_manual_reference"),
        ),
        sa.CheckConstraint("source IN ('stripe', 'manual')", name=op.f("ck_invoices_source")),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'payment_failed', 'partially_refunded', 'refunded', 'void', 'uncollectible')",
            name=op.f("ck_invoices_status"),
        ),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_invoices_amount_not_negative")),
        sa.CheckConstraint(
            "amount_refunded_cents BETWEEN 0 AND amount_cents", name=op.f("ck_invoices_refunded_within_amount")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_invoices_customer_id_customers"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_invoices_subscription_id_subscriptions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("stripe_invoice_id", name=op.f("uq_invoices_stripe_invoice_id")),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id", sa.literal_column("id DESC")], unique=False)
    op.create_index(
        "ix_invoices_paid_at",
        "invoices",
        ["paid_at", "currency"],
        unique=False,
        postgresql_where=sa.text("paid_at IS NOT NULL"),
    )
    op.create_index("ix_invoices_status_id", "invoices", ["status", sa.literal_column("id DESC")], unique=False)
    op.create_index(op.f("ix_invoices_stripe_charge_id"), "invoices", ["stripe_charge_id"], unique=False)
    op.create_index(
        op.f("ix_invoices_stripe_payment_intent_id"), "invoices", ["stripe_payment_intent_id"], unique=False
    )
    op.create_index(op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"], unique=False)
    op.create_index(
        "uq_invoices_manual_reference",
        "invoices",
        [sa.literal_column("lower(reference_number)")],
        unique=True,
        postgresql_where=sa.text("source = 'manual'"),
    )
    op.create_table(
        "subscription_adjustments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("days", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("previous_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("new_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('extend', 'grant', 'cancel', 'resume', 'cancel_now', 'manual_payment', 'replace', 'expire')",
            name=op.f("ck_subscription_adjustments_kind"),
        ),
        sa.CheckConstraint(
            "char_length(btrim(reason)) BETWEEN 1 AND 2000", name=op.f("ck_subscription_adjustments_reason_required")
        ),
        sa.CheckConstraint(
            "days IS NULL OR days BETWEEN 1 AND 3650", name=op.f("ck_subscription_adjustments_days_range")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_adjustments_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_adjustments")),
    )
    op.create_index(
        op.f("ix_subscription_adjustments_subscription_id"),
        "subscription_adjustments",
        ["subscription_id"],
        unique=False,
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.String(length=1000), nullable=True),
        sa.Column("also_cancel", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("cancel_outcome", sa.String(length=16), nullable=True),
        sa.Column("cancel_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "cancel_outcome IS NULL OR cancel_outcome IN ('succeeded', 'failed', 'retried')",
            name=op.f("ck_refunds_cancel_outcome"),
        ),
        sa.CheckConstraint("currency IN ('thb', 'usd')", name=op.f("ck_refunds_currency")),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name=op.f("ck_refunds_status")),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_refunds_invoice_id_invoices"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    op.create_index("ix_refunds_invoice_id", "refunds", ["invoice_id", "status"], unique=False)
    op.create_index("ix_refunds_status_id", "refunds", ["status", sa.literal_column("id DESC")], unique=False)


def downgrade() -> None:
    op.drop_index("ix_refunds_status_id", table_name="refunds")
    op.drop_index("ix_refunds_invoice_id", table_name="refunds")
    op.drop_table("refunds")
    op.drop_index(op.f("ix_subscription_adjustments_subscription_id"), table_name="subscription_adjustments")
    op.drop_table("subscription_adjustments")
    op.drop_index("uq_invoices_manual_reference", table_name="invoices", postgresql_where=sa.text("source = 'manual'"))
    op.drop_index(op.f("ix_invoices_subscription_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_stripe_payment_intent_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_stripe_charge_id"), table_name="invoices")
    op.drop_index("ix_invoices_status_id", table_name="invoices")
    op.drop_index("ix_invoices_paid_at", table_name="invoices", postgresql_where=sa.text("paid_at IS NOT NULL"))
    op.drop_index("ix_invoices_customer_id", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_subscriptions_status_id", table_name="subscriptions")
    op.drop_index("ix_subscriptions_source_id", table_name="subscriptions")
    op.drop_index("ix_subscriptions_plan_id_id", table_name="subscriptions")
    op.drop_index(
        "ix_subscriptions_expiry",
        table_name="subscriptions",
        postgresql_where=sa.text("source <> 'stripe' AND status IN ('active', 'trialing')"),
    )
    op.drop_index(
        "ix_subscriptions_ended_at", table_name="subscriptions", postgresql_where=sa.text("ended_at IS NOT NULL")
    )
    op.drop_index("ix_subscriptions_customer_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(
        "ix_checkout_sessions_open", table_name="checkout_sessions", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_table("checkout_sessions")
    op.drop_index("ix_plans_listing", table_name="plans")
    op.drop_index(op.f("ix_plans_app_id"), table_name="plans")
    op.drop_table("plans")
    op.drop_index("ix_billing_sessions_expires_at", table_name="billing_sessions")
    op.drop_index(op.f("ix_billing_sessions_customer_id"), table_name="billing_sessions")
    op.drop_index(op.f("ix_billing_sessions_app_id"), table_name="billing_sessions")
    op.drop_table("billing_sessions")
    op.drop_index(
        "ix_stripe_events_unhandled",
        table_name="stripe_events",
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.drop_index("ix_stripe_events_status_id", table_name="stripe_events")
    op.drop_index("ix_stripe_events_object", table_name="stripe_events")
    op.drop_index("ix_stripe_events_created", table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index("ix_rate_limit_hits_key_at", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
    op.drop_index("ix_customers_email_lower", table_name="customers")
    op.drop_table("customers")
    op.drop_index("ix_audit_log_entity", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("apps")
    op.drop_index("uq_admin_users_email_lower", table_name="admin_users")
    op.drop_table("admin_users")
    drop_procrastinate_schema(op.get_bind())
