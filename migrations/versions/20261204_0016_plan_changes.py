"""Plan changes: a subscription's pending change (from its Stripe subscription schedule), the reason an end user
gave for cancelling, and each app's rules for which plan changes its users are offered.

Revision ID: 0016_plan_changes
Revises: 0017_trials_promotions
Create Date: 2026-12-04 18:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_plan_changes"
down_revision: str | None = "0017_trials_promotions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("pending_plan_id", sa.BigInteger(), nullable=True))
    op.add_column("subscriptions", sa.Column("pending_change_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("subscriptions", sa.Column("stripe_schedule_id", sa.String(255), nullable=True))
    op.add_column("subscriptions", sa.Column("cancel_reason", sa.String(2000), nullable=True))
    op.create_foreign_key(
        "fk_subscriptions_pending_plan_id_plans",
        "subscriptions",
        "plans",
        ["pending_plan_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_check_constraint(
        "ck_subscriptions_pending_change_complete",
        "subscriptions",
        "(pending_plan_id IS NULL) = (pending_change_at IS NULL)",
    )
    op.add_column("apps", sa.Column("allow_downgrade", sa.Boolean(), server_default="true", nullable=False))
    op.add_column("apps", sa.Column("allow_downgrade_from_yearly", sa.Boolean(), server_default="true", nullable=False))
    op.add_column("apps", sa.Column("allow_interval_change", sa.Boolean(), server_default="true", nullable=False))


def downgrade() -> None:
    op.drop_column("apps", "allow_interval_change")
    op.drop_column("apps", "allow_downgrade_from_yearly")
    op.drop_column("apps", "allow_downgrade")
    op.drop_constraint("ck_subscriptions_pending_change_complete", "subscriptions", type_="check")
    op.drop_constraint("fk_subscriptions_pending_plan_id_plans", "subscriptions", type_="foreignkey")
    op.drop_column("subscriptions", "cancel_reason")
    op.drop_column("subscriptions", "stripe_schedule_id")
    op.drop_column("subscriptions", "pending_change_at")
    op.drop_column("subscriptions", "pending_plan_id")
