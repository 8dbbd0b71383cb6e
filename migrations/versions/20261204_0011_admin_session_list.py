"""Admin sessions as rows: each signed-in browser is listed (created, last seen, IP, browser, second factor) and can
be signed out on its own; this replaces the per-admin session generation counter.

Cookies issued before this revision carry no session token, so every admin signs in again once.

Revision ID: 0011_admin_session_list
Revises: 0009_dunning_notices
Create Date: 2026-12-04 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_admin_session_list"
down_revision: str | None = "0009_dunning_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(128), server_default="", nullable=False),
        sa.Column("second_factor", sa.String(16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.CheckConstraint("second_factor IN ('none', 'totp', 'backup')", name="ck_admin_sessions_second_factor"),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revoked_reason IS NULL)", name="ck_admin_sessions_revoked_with_reason"
        ),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admin_users.id"], ondelete="CASCADE", name="fk_admin_sessions_admin_id_admin_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_admin_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_admin_sessions_token_hash"),
    )
    op.create_index(
        "ix_admin_sessions_admin_live",
        "admin_sessions",
        ["admin_id", "created_at"],
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_index("ix_admin_sessions_last_seen_at", "admin_sessions", ["last_seen_at"])
    op.drop_column("admin_users", "session_generation")


def downgrade() -> None:
    op.add_column("admin_users", sa.Column("session_generation", sa.BigInteger(), server_default="0", nullable=False))
    op.drop_table("admin_sessions")
