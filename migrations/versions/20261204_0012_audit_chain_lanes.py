"""The audit chain in lanes: 16 chain ends instead of one, so concurrent commits no longer wait for each other.

A committing transaction appends its audit rows to any lane no other transaction holds. The chain written so far
becomes lane 0 (its positions and hashes are unchanged: lane 0's rows hash as before); lanes 1-15 start empty.

Revision ID: 0012_audit_chain_lanes
Revises: 0011_admin_session_list
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_audit_chain_lanes"
down_revision: str | None = "0011_admin_session_list"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANES = 16


def upgrade() -> None:
    op.create_table(
        "audit_chain_lanes",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=True),
        sa.CheckConstraint("id >= 0", name="ck_audit_chain_lanes_id_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_lanes"),
    )
    op.execute(
        "INSERT INTO audit_chain_lanes (id, last_seq, last_hash) SELECT 0, last_seq, last_hash FROM audit_chain_head"
    )
    op.execute(f"INSERT INTO audit_chain_lanes (id) SELECT generate_series(1, {LANES - 1})")
    op.add_column("audit_chain_head", sa.Column("lanes", sa.BigInteger(), server_default=str(LANES), nullable=False))
    op.create_check_constraint("ck_audit_chain_head_lanes_range", "audit_chain_head", "lanes BETWEEN 1 AND 256")
    op.drop_column("audit_chain_head", "last_seq")
    op.drop_column("audit_chain_head", "last_hash")

    op.add_column("audit_log", sa.Column("chain_lane", sa.SmallInteger(), nullable=True))
    op.execute("UPDATE audit_log SET chain_lane = 0 WHERE chain_seq IS NOT NULL")
    op.drop_constraint("uq_audit_log_chain_seq", "audit_log", type_="unique")
    op.create_unique_constraint("uq_audit_log_chain_lane_seq", "audit_log", ["chain_lane", "chain_seq"])
    op.create_check_constraint(
        "ck_audit_log_chain_lane_with_seq", "audit_log", "(chain_lane IS NULL) = (chain_seq IS NULL)"
    )


def downgrade() -> None:
    # lanes cannot be merged back into one chain without the key: rows of lanes 1+ are re-chained by nobody, so
    # they come out of the chain (and `audit:verify` at that revision names them); lane 0 is the old chain
    op.drop_constraint("ck_audit_log_chain_lane_with_seq", "audit_log", type_="check")
    op.drop_constraint("uq_audit_log_chain_lane_seq", "audit_log", type_="unique")
    op.execute(
        "UPDATE audit_log SET chain_seq = NULL, prev_hash = NULL, row_hash = NULL "
        "WHERE chain_lane IS DISTINCT FROM 0 AND chain_seq IS NOT NULL"
    )
    op.create_unique_constraint("uq_audit_log_chain_seq", "audit_log", ["chain_seq"])
    op.drop_column("audit_log", "chain_lane")
    op.add_column("audit_chain_head", sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("audit_chain_head", sa.Column("last_hash", sa.LargeBinary(length=32), nullable=True))
    op.execute(
        "UPDATE audit_chain_head SET (last_seq, last_hash) = "
        "(SELECT last_seq, last_hash FROM audit_chain_lanes WHERE id = 0)"
    )
    op.drop_constraint("ck_audit_chain_head_lanes_range", "audit_chain_head", type_="check")
    op.drop_column("audit_chain_head", "lanes")
    op.drop_table("audit_chain_lanes")
