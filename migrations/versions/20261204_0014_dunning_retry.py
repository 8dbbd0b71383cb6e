"""Dunning retries: Stripe's next retry and the declined card on invoices; the hand-off phase of outbox messages.

`invoices.next_payment_attempt_at` is Stripe's `invoice.next_payment_attempt`; `failed_payment_method_id` is the card
the last attempt was declined on (a new default card triggers an immediate retry). `outbox_messages.handed_off_at`
marks an attempt that has begun the final hand-off (SMTP DATA); such a message whose worker died is `in_doubt`.

Revision ID: 0014_dunning_retry
Revises: 0012_worker_apply
Create Date: 2026-12-04 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_dunning_retry"
down_revision: str | None = "0012_worker_apply"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('pending', 'sending', 'delivered', 'failed')"
NEW_STATUSES = "status IN ('pending', 'sending', 'delivered', 'failed', 'in_doubt')"


def upgrade() -> None:
    op.add_column("invoices", sa.Column("next_payment_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("invoices", sa.Column("failed_payment_method_id", sa.String(255), nullable=True))
    op.add_column("outbox_messages", sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", type_="check")
    op.create_check_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", NEW_STATUSES)


def downgrade() -> None:
    # an in-doubt message goes back to failed: kept, visible, and resendable by hand as before
    op.execute("UPDATE outbox_messages SET status = 'failed' WHERE status = 'in_doubt'")
    op.drop_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", type_="check")
    op.create_check_constraint(op.f("ck_outbox_messages_status"), "outbox_messages", OLD_STATUSES)
    op.drop_column("outbox_messages", "handed_off_at")
    op.drop_column("invoices", "failed_payment_method_id")
    op.drop_column("invoices", "next_payment_attempt_at")
