"""Checkout turns: the lease Subscribe holds on the customer row while it calls Stripe outside any transaction.

Revision ID: 0019_checkout_turns
Revises: 0018_stripe_turns
Create Date: 2026-12-06 03:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_checkout_turns"
down_revision: str | None = "0018_stripe_turns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("checkout_turn_nonce", sa.String(64), nullable=True))
    op.add_column("customers", sa.Column("checkout_turn_until", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "ck_customers_checkout_turn_whole",
        "customers",
        "(checkout_turn_nonce IS NULL) = (checkout_turn_until IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_customers_checkout_turn_whole", "customers", type_="check")
    op.drop_column("customers", "checkout_turn_until")
    op.drop_column("customers", "checkout_turn_nonce")
