"""Plans remember the last comparison with their Stripe price, so the plans list warns when the price drifts; apps
get an optional logo for the billing pages.

Revision ID: 0005_admin_polish
Revises: 0002e
Create Date: 2026-12-04 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_admin_polish"
down_revision: str | None = "0003_stripe_today"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("stripe_price_problem", sa.String(length=2000), nullable=True))
    op.add_column("plans", sa.Column("stripe_price_checked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("apps", sa.Column("logo_url", sa.String(length=2048), nullable=True))
    op.create_check_constraint("logo_url_scheme", "apps", "logo_url IS NULL OR logo_url ~* '^https://[^\\s]+$'")


def downgrade() -> None:
    op.drop_constraint("logo_url_scheme", "apps", type_="check")
    op.drop_column("apps", "logo_url")
    op.drop_column("plans", "stripe_price_checked_at")
    op.drop_column("plans", "stripe_price_problem")
