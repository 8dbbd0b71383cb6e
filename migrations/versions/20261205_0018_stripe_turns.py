"""Stripe turns: the lease a subscription action holds on its row while it calls Stripe outside any transaction.

Revision ID: 0018_stripe_turns
Revises: 0016_plan_changes
Create Date: 2026-12-05 17:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_stripe_turns"
down_revision: str | None = "0016_plan_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("stripe_turn_nonce", sa.String(64), nullable=True))
    op.add_column("subscriptions", sa.Column("stripe_turn_by", sa.String(255), nullable=True))
    op.add_column("subscriptions", sa.Column("stripe_turn_until", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "ck_subscriptions_stripe_turn_whole",
        "subscriptions",
        "(stripe_turn_nonce IS NULL) = (stripe_turn_until IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_subscriptions_stripe_turn_whole", "subscriptions", type_="check")
    op.drop_column("subscriptions", "stripe_turn_until")
    op.drop_column("subscriptions", "stripe_turn_by")
    op.drop_column("subscriptions", "stripe_turn_nonce")
