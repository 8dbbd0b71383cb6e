"""Admin sessions that can be ended server-side: a per-admin session generation.

Every admin session cookie carries the generation it was issued under; signing out, changing the password,
deactivating the admin or "end sessions" bumps it, and a cookie of an older generation no longer signs anybody in.

Revision ID: 0004_admin_sessions
Revises: 0002e
Create Date: 2026-12-04 15:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_admin_sessions"
down_revision: str | None = "0005_admin_polish"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("admin_users", sa.Column("session_generation", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("admin_users", "session_generation")
