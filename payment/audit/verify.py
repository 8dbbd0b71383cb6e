"""Walk the audit chain, every lane of it, and name the first row that was changed, deleted or inserted behind the
service's back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit.chain import COLUMNS, GENESIS, content, row_hash
from payment.db import Database
from payment.models import AuditChainHead, AuditChainLane, AuditLog, utcnow

log = logging.getLogger(__name__)
BATCH = 5000


@dataclass
class Verdict:
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


async def verify_chain(session: AsyncSession, *, key: bytes, limit_problems: int = 20) -> Verdict:
    """Recompute every chained row's hash, lane by lane in position order; report changed rows, missing positions
    (deleted rows), a lane's tail cut off after its end's last position, a lane end deleted, rows in no lane that
    exists, and rows inserted outside the chain (no position, after the start)."""
    verdict = Verdict()
    head = (await session.execute(select(AuditChainHead).where(AuditChainHead.id == 1))).scalar_one_or_none()
    if head is None:
        verdict.problems.append("the chain head row (audit_chain_head) was deleted")
        return verdict
    ends = {lane.id: lane for lane in (await session.execute(select(AuditChainLane))).scalars()}
    for lane in range(head.lanes):
        if len(verdict.problems) >= limit_problems:
            break
        end = ends.get(lane)
        if end is None:
            verdict.problems.append(f"lane {lane}: its end row (audit_chain_lanes) was deleted")
            continue
        await _verify_lane(session, key, end, verdict, limit_problems)
    strays = (
        (
            await session.execute(
                select(AuditLog.id)
                .where(or_(AuditLog.chain_lane < 0, AuditLog.chain_lane >= head.lanes))
                .order_by(AuditLog.id)
                .limit(max(0, limit_problems - len(verdict.problems)))
            )
        )
        .scalars()
        .all()
    )
    verdict.problems.extend(f"row {row_id}: it names a chain lane that does not exist" for row_id in strays)
    outsiders = (
        (
            await session.execute(
                select(AuditLog.id)
                .where(AuditLog.chain_seq.is_(None), AuditLog.id > head.legacy_max_id)
                .order_by(AuditLog.id)
                .limit(max(0, limit_problems - len(verdict.problems)))
            )
        )
        .scalars()
        .all()
    )
    verdict.problems.extend(
        f"row {row_id}: inserted outside the chain (it has no chain position)" for row_id in outsiders
    )
    return verdict


async def _verify_lane(
    session: AsyncSession, key: bytes, end: AuditChainLane, verdict: Verdict, limit_problems: int
) -> None:
    lane = end.id
    expected_seq, prev, last_id = 1, GENESIS, None
    while len(verdict.problems) < limit_problems:
        batch = (
            await session.execute(
                select(*COLUMNS, AuditLog.chain_seq, AuditLog.prev_hash, AuditLog.row_hash)
                .where(AuditLog.chain_lane == lane, AuditLog.chain_seq >= expected_seq)
                .order_by(AuditLog.chain_seq)
                .limit(BATCH)
            )
        ).all()
        if not batch:
            break
        for row in batch:
            verdict.rows += 1
            if row.chain_seq != expected_seq:
                where = f"after row {last_id}" if last_id is not None else "at the start of the lane"
                verdict.problems.append(
                    f"row {row.id}: {row.chain_seq - expected_seq} row(s) before it were deleted (lane {lane}, "
                    f"{where}; positions {expected_seq}-{row.chain_seq - 1} are missing)"
                )
            elif row.prev_hash != prev:
                verdict.problems.append(
                    f"row {row.id}: its link to the previous row {last_id} does not match "
                    f"(lane {lane}: a row was changed, inserted or reordered before it)"
                )
            body = content(
                lane,
                row.chain_seq,
                row.id,
                row.at,
                row.actor,
                row.action,
                row.entity_type,
                row.entity_id,
                row.details,
                row.ip,
            )
            if row.row_hash != row_hash(key, row.prev_hash or GENESIS, body):
                verdict.problems.append(f"row {row.id}: its content was changed after it was written")
            # continue from what is stored, so one changed row is reported once and not as a cascade
            expected_seq, prev, last_id = row.chain_seq + 1, row.row_hash or GENESIS, row.id
    if len(verdict.problems) < limit_problems and (
        expected_seq - 1 != end.last_seq or prev != (end.last_hash or GENESIS)
    ):
        verdict.problems.append(
            f"lane {lane} ends at position {expected_seq - 1} (row {last_id}) but its end says {end.last_seq}: "
            "the latest rows were deleted or the lane's end was changed"
        )


async def record_verdict(session: AsyncSession, verdict: Verdict) -> None:
    """Keep the last verification's outcome on the chain head, where the dashboard shows it."""
    await session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(verified_at=utcnow(), verified_ok=verdict.ok, verify_problem=verdict.first_problem)
    )


async def last_verdict(session: AsyncSession) -> AuditChainHead | None:
    """The chain head with the last verification's outcome (None before the chain exists)."""
    return await session.get(AuditChainHead, 1)


async def check_and_record(db: Database, *, key: bytes) -> Verdict:
    """Verify the chain (a read, no lock held) and keep the outcome; a break is logged as an error, which reaches
    Sentry through its logging integration."""
    async with db.session() as session:
        verdict = await verify_chain(session, key=key)
    async with db.transaction() as session:
        await record_verdict(session, verdict)
    if verdict.ok:
        log.info("audit chain verified: %s rows intact", verdict.rows)
    else:
        log.error("audit chain broken: %s", verdict.first_problem)
    return verdict
