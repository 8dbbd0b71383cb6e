"""One-time admin form nonces, so a double-submitted billing action acts once.

Revision ID: 0002d
Revises: 0001
Create Date: 2026-11-27 07:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002d"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "form_submissions",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_form_submissions")),
    )
    op.create_index("ix_form_submissions_created_at", "form_submissions", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_form_submissions_created_at", table_name="form_submissions")
    op.drop_table("form_submissions")
