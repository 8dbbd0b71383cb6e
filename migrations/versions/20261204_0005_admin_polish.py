"""Plans remember the last comparison with their Stripe price, so the plans list warns when the price drifts.

Revision ID: 0005_admin_polish
Revises: 0002e
Create Date: 2026-12-04 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_admin_polish"
down_revision: str | None = "0002e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("stripe_price_problem", sa.String(length=2000), nullable=True))
    op.add_column("plans", sa.Column("stripe_price_checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("plans", "stripe_price_checked_at")
    op.drop_column("plans", "stripe_price_problem")
