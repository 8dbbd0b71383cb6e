"""Admin roles (owner, finance, support, viewer), two-factor sign-in, set-password links and the tamper-evident
audit chain.

Existing `admin` accounts become owners. New admin rows default to the least privilege (viewer). Audit rows
written before this revision stay outside the chain: `audit_chain_head.legacy_max_id` marks where it starts, so a
row without a chain position above that id is one inserted behind the service's back.

Revision ID: 0007_roles_audit_chain
Revises: 0002e
Create Date: 2026-12-04 15:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_roles_audit_chain"
down_revision: str | None = "0010_outgoing_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_admin_users_role"), "admin_users", type_="check")
    op.execute("UPDATE admin_users SET role = 'owner' WHERE role = 'admin'")
    op.create_check_constraint(
        op.f("ck_admin_users_role"), "admin_users", "role IN ('owner', 'finance', 'support', 'viewer')"
    )
    op.alter_column("admin_users", "role", server_default="viewer")
    op.add_column("admin_users", sa.Column("totp_secret_encrypted", sa.String(length=512), nullable=True))
    op.add_column("admin_users", sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("admin_users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("admin_users", sa.Column("password_token_hash", sa.LargeBinary(length=32), nullable=True))
    op.add_column("admin_users", sa.Column("password_token_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint(op.f("uq_admin_users_password_token_hash"), "admin_users", ["password_token_hash"])
    op.create_table(
        "admin_backup_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admin_users.id"],
            ondelete="CASCADE",
            name=op.f("fk_admin_backup_codes_admin_id_admin_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_backup_codes")),
        sa.UniqueConstraint("admin_id", "code_hash", name="uq_admin_backup_codes_admin_code"),
    )

    op.add_column("audit_log", sa.Column("chain_seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=True))
    op.add_column("audit_log", sa.Column("row_hash", sa.LargeBinary(length=32), nullable=True))
    op.create_unique_constraint(op.f("uq_audit_log_chain_seq"), "audit_log", ["chain_seq"])
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("legacy_max_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_ok", sa.Boolean(), nullable=True),
        sa.Column("verify_problem", sa.Text(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.execute("INSERT INTO audit_chain_head (id, legacy_max_id) SELECT 1, coalesce(max(id), 0) FROM audit_log")


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_constraint(op.f("uq_audit_log_chain_seq"), "audit_log", type_="unique")
    op.drop_column("audit_log", "row_hash")
    op.drop_column("audit_log", "prev_hash")
    op.drop_column("audit_log", "chain_seq")

    op.drop_table("admin_backup_codes")
    op.drop_constraint(op.f("uq_admin_users_password_token_hash"), "admin_users", type_="unique")
    op.drop_column("admin_users", "password_token_expires_at")
    op.drop_column("admin_users", "password_token_hash")
    op.drop_column("admin_users", "totp_last_step")
    op.drop_column("admin_users", "totp_enabled_at")
    op.drop_column("admin_users", "totp_secret_encrypted")
    op.alter_column("admin_users", "role", server_default="admin")
    op.drop_constraint(op.f("ck_admin_users_role"), "admin_users", type_="check")
    # finance and support could not be expressed before: they fall back to read-only rather than to full rights
    op.execute("UPDATE admin_users SET role = CASE role WHEN 'owner' THEN 'admin' ELSE 'viewer' END")
    op.create_check_constraint(op.f("ck_admin_users_role"), "admin_users", "role IN ('admin', 'viewer')")
