"""The worker reads Stripe outside its transaction: fetch tickets say which stored snapshot is newer.

Revision ID: 0012_worker_apply
Revises: 0012_audit_chain_lanes
Create Date: 2026-12-04 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_worker_apply"
down_revision: str | None = "0012_audit_chain_lanes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("stripe_fetch_tickets")))
    op.add_column("subscriptions", sa.Column("stripe_fetch_ticket", sa.BigInteger(), nullable=True))
    op.add_column("invoices", sa.Column("stripe_fetch_ticket", sa.BigInteger(), nullable=True))
    op.add_column("invoices", sa.Column("stripe_charge_fetch_ticket", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("invoices", "stripe_charge_fetch_ticket")
    op.drop_column("invoices", "stripe_fetch_ticket")
    op.drop_column("subscriptions", "stripe_fetch_ticket")
    op.execute(sa.schema.DropSequence(sa.Sequence("stripe_fetch_tickets")))
