"""The tamper-evident audit chain: intact after normal and concurrent writes; `payment audit:verify` names the row
changed, deleted or inserted directly in SQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, select

from payment.admins import service as admins
from payment.audit import service as audit
from payment.audit.chain import TAKE_FREE_LANE, chain_key
from payment.audit.verify import Verdict, check_and_record, verify_chain
from payment.bootstrap import create_app
from payment.config import Settings
from payment.db import Database
from payment.dburl import libpq_url
from payment.models import AuditChainHead, AuditChainLane, AuditLog
from payment.runtime import Services
from tests.integration.admin.conftest import sign_in
from tests.support import factories
from tests.support.app import asgi_client

WRITERS = 50


async def _write(services: Services, action: str, count: int = 1) -> list[int]:
    async with services.db.transaction() as session:
        rows = [
            await audit.record(
                session,
                actor=audit.SYSTEM,
                action=action,
                entity_type="test",
                entity_id=i,
                details={"n": i, "text": "ไทย é"},
            )
            for i in range(count)
        ]
    return [row.id for row in rows]


async def _verify(services: Services) -> Verdict:
    async with services.db.session() as session:
        return await verify_chain(session, key=chain_key(services.settings.audit_chain_secret))


@pytest.fixture
async def sql(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct database connection, as someone with database access (not the service) would use it."""
    assert settings.database_url is not None
    conn = await asyncpg.connect(libpq_url(settings.database_url))
    yield conn
    await conn.close()


async def test_rows_are_chained_at_commit_and_verify(services: Services) -> None:
    ids = await _write(services, "test.written", 3)
    async with services.db.session() as session:
        rows = (
            (await session.execute(select(AuditLog).where(AuditLog.id.in_(ids)).order_by(AuditLog.id))).scalars().all()
        )
        lane = rows[0].chain_lane
        assert lane is not None and {r.chain_lane for r in rows} == {lane}  # one transaction, one lane
        end = await session.get(AuditChainLane, lane)
    first = rows[0].chain_seq
    assert first is not None and [r.chain_seq for r in rows] == [first, first + 1, first + 2]
    assert rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    assert end is not None and end.last_hash == rows[2].row_hash
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems
    assert verdict.rows >= 3


async def test_a_rolled_back_transaction_leaves_no_gap(services: Services) -> None:
    with pytest.raises(RuntimeError):
        async with services.db.transaction() as session:
            await audit.record(session, actor=audit.SYSTEM, action="test.rolled_back")
            raise RuntimeError("abandon")
    await _write(services, "test.after_rollback")
    assert (await _verify(services)).ok


async def test_an_update_in_sql_is_named(services: Services, sql: asyncpg.Connection) -> None:
    _, changed, _ = await _write(services, "test.update", 3)
    await sql.execute("UPDATE audit_log SET details = '{\"n\": 99}' WHERE id = $1", changed)
    try:
        verdict = await _verify(services)
        assert verdict.first_problem == f"row {changed}: its content was changed after it was written"
        assert len(verdict.problems) == 1  # the rows after it still link to what was stored
    finally:
        await sql.execute('UPDATE audit_log SET details = \'{"n": 1, "text": "ไทย é"}\' WHERE id = $1', changed)
    assert (await _verify(services)).ok


async def test_a_delete_in_sql_is_named(services: Services, sql: asyncpg.Connection) -> None:
    before, gone, after = await _write(services, "test.delete", 3)
    saved = await sql.fetchrow("SELECT * FROM audit_log WHERE id = $1", gone)
    await sql.execute("DELETE FROM audit_log WHERE id = $1", gone)
    try:
        verdict = await _verify(services)
        assert verdict.first_problem is not None
        assert verdict.first_problem.startswith(f"row {after}: 1 row(s) before it were deleted (lane ")
        assert f"after row {before};" in verdict.first_problem
    finally:
        columns = list(saved.keys())
        await sql.execute(
            f"INSERT INTO audit_log ({', '.join(columns)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            *saved.values(),
        )
    assert (await _verify(services)).ok


async def test_deleting_the_latest_rows_is_named(services: Services, sql: asyncpg.Connection) -> None:
    kept, gone = await _write(services, "test.tail", 2)
    saved = await sql.fetchrow("SELECT * FROM audit_log WHERE id = $1", gone)
    await sql.execute("DELETE FROM audit_log WHERE id = $1", gone)
    try:
        verdict = await _verify(services)
        assert verdict.first_problem is not None and f"(row {kept}) but its end says" in verdict.first_problem
    finally:
        columns = list(saved.keys())
        await sql.execute(
            f"INSERT INTO audit_log ({', '.join(columns)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            *saved.values(),
        )


async def test_an_insert_in_sql_is_named(services: Services, sql: asyncpg.Connection) -> None:
    await _write(services, "test.insert")
    planted = await sql.fetchval(
        "INSERT INTO audit_log (actor, action) VALUES ('admin:1', 'refund.issued') RETURNING id"
    )
    try:
        verdict = await _verify(services)
        assert verdict.problems == [f"row {planted}: inserted outside the chain (it has no chain position)"]
        # copying a neighbour's chain fields onto the planted row does not make it fit
        await sql.execute(
            "UPDATE audit_log SET (chain_lane, chain_seq, prev_hash, row_hash) = "
            "(SELECT 0, last_seq + 1, last_hash, last_hash FROM audit_chain_lanes WHERE id = 0) WHERE id = $1",
            planted,
        )
        await sql.execute("UPDATE audit_chain_lanes SET last_seq = last_seq + 1 WHERE id = 0")
        verdict = await _verify(services)
        assert verdict.first_problem == f"row {planted}: its content was changed after it was written"
    finally:
        await sql.execute("DELETE FROM audit_log WHERE id = $1", planted)
        await sql.execute(
            "UPDATE audit_chain_lanes SET last_seq = "
            "(SELECT coalesce(max(chain_seq), 0) FROM audit_log WHERE chain_lane = 0) WHERE id = 0"
        )
    assert (await _verify(services)).ok


async def test_fifty_concurrent_writers_leave_a_valid_chain(services: Services) -> None:
    assert services.settings.database_url is not None
    db = Database(
        services.settings.database_url, null_pool=True, audit_key=chain_key(services.settings.audit_chain_secret)
    )
    start = asyncio.Event()

    async def writer(n: int) -> None:
        await start.wait()
        for round_ in range(4):
            async with db.transaction() as session:
                await audit.record(
                    session, actor=audit.SYSTEM, action="test.concurrent", entity_id=n, details={"round": round_}
                )
                await audit.record(
                    session,
                    actor=audit.SYSTEM,
                    action="test.concurrent",
                    entity_id=n,
                    details={"round": round_, "second": True},
                )

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    start.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        await db.dispose()
    async with services.db.session() as session:
        written = await session.scalar(select(func.count()).where(AuditLog.action == "test.concurrent"))
        unchained = await session.scalar(select(func.count()).where(AuditLog.chain_seq.is_(None)))
    assert written == WRITERS * 4 * 2 and unchained == 0
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems


async def test_the_verdict_is_kept_for_the_dashboard(services: Services, sql: asyncpg.Connection) -> None:
    changed = (await _write(services, "test.verdict"))[0]
    await sql.execute("UPDATE audit_log SET actor = 'admin:2' WHERE id = $1", changed)
    try:
        verdict = await check_and_record(services.db, key=chain_key(services.settings.audit_chain_secret))
        assert not verdict.ok
        head = await sql.fetchrow("SELECT verified_ok, verify_problem FROM audit_chain_head")
        assert head["verified_ok"] is False and head["verify_problem"] == verdict.first_problem
    finally:
        await sql.execute("UPDATE audit_log SET actor = 'system' WHERE id = $1", changed)
    assert (await check_and_record(services.db, key=chain_key(services.settings.audit_chain_secret))).ok


def _cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    assert settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "APP_ENV", "SECRET_KEY"))}
    return subprocess.run(
        [sys.executable, "-m", "payment.cli", "audit:verify"],
        capture_output=True,
        text=True,
        env={**env, "DATABASE_URL": settings.database_url, "SECRET_KEY": settings.secret_key},
        timeout=120,
        check=False,
    )


async def test_the_command_passes_then_names_the_changed_row(services: Services, sql: asyncpg.Connection) -> None:
    changed = (await _write(services, "test.cli"))[0]
    clean = await asyncio.to_thread(_cli, services.settings)
    assert clean.returncode == 0, clean.stderr
    assert "Audit chain intact" in clean.stdout
    await sql.execute("UPDATE audit_log SET action = 'test.rewritten' WHERE id = $1", changed)
    try:
        broken = await asyncio.to_thread(_cli, services.settings)
    finally:
        await sql.execute("UPDATE audit_log SET action = 'test.cli' WHERE id = $1", changed)
    assert broken.returncode == 1
    assert f"BROKEN row {changed}: its content was changed after it was written" in broken.stderr


async def test_the_dashboard_shows_a_broken_chain(services: Services, sql: asyncpg.Connection) -> None:
    async with services.db.transaction() as session:
        await admins.create_admin(
            session, email="chain@aquoris.test", name="Chain", password="correct-horse-1", actor="test"
        )
    changed = (await _write(services, "test.dashboard"))[0]
    async with asgi_client(create_app(services=services)) as client:
        assert (await sign_in(client, "chain@aquoris.test", "correct-horse-1")).status_code == 302
        key = chain_key(services.settings.audit_chain_secret)
        assert (await check_and_record(services.db, key=key)).ok
        assert 'id="audit-chain-broken"' not in (await client.get("/admin/")).text
        await sql.execute("UPDATE audit_log SET ip = '10.0.0.1' WHERE id = $1", changed)
        try:
            await check_and_record(services.db, key=key)
            page = (await client.get("/admin/")).text
        finally:
            await sql.execute("UPDATE audit_log SET ip = NULL WHERE id = $1", changed)
        assert 'id="audit-chain-broken"' in page
        assert f"row {changed}: its content was changed after it was written" in page
        await check_and_record(services.db, key=key)
        assert 'id="audit-chain-broken"' not in (await client.get("/admin/")).text


async def test_a_deleted_chain_head_is_named(services: Services, sql: asyncpg.Connection) -> None:
    saved = await sql.fetchrow("SELECT * FROM audit_chain_head")
    await sql.execute("DELETE FROM audit_chain_head")
    try:
        verdict = await _verify(services)
    finally:
        columns = list(saved.keys())
        await sql.execute(
            f"INSERT INTO audit_chain_head ({', '.join(columns)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            *saved.values(),
        )
    assert verdict.problems == ["the chain head row (audit_chain_head) was deleted"]
    assert (await _verify(services)).ok


async def test_sessions_opened_on_the_one_statement_path_are_chained(services: Services) -> None:
    """The API's hot path writes its audit rows without the ORM; they still join the chain in their transaction,
    also when many open at once (new users, known users with a changed email, sessions only)."""
    async with services.db.transaction() as session:
        _, key = await factories.create_app(session, slug="chain-hot", name="Chain hot path")
    async with asgi_client(create_app(services=services)) as client:

        async def open_one(n: int) -> int:
            body = {"externalUserId": f"hot-{n % 5}", "appSlug": "chain-hot", "email": f"u{n}@example.com"}
            response = await client.post("/api/v1/sessions", json=body, headers={"Authorization": f"Bearer {key}"})
            return response.status_code

        assert await asyncio.gather(*(open_one(n) for n in range(20))) == [201] * 20
    async with services.db.session() as session:
        written = await session.scalar(
            select(func.count()).where(AuditLog.actor == "app:chain-hot", AuditLog.action == "billing_session.created")
        )
        unchained = await session.scalar(
            select(func.count()).where(AuditLog.actor == "app:chain-hot", AuditLog.chain_seq.is_(None))
        )
    assert written == 20 and unchained == 0
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems


async def _hold_lanes(settings: Settings, count: int) -> tuple[list[asyncpg.Connection], list[int | None]]:
    """`count` open transactions, each holding the lane it took as a committing writer would."""
    assert settings.database_url is not None
    holders, lanes = [], []
    for _ in range(count):
        conn = await asyncpg.connect(libpq_url(settings.database_url))
        await conn.execute("BEGIN")
        taken = await conn.fetchrow(TAKE_FREE_LANE)
        holders.append(conn)
        lanes.append(None if taken is None else taken["id"])
    return holders, lanes


async def _release(holders: list[asyncpg.Connection]) -> None:
    for conn in holders:
        await conn.execute("ROLLBACK")
        await conn.close()


async def test_concurrent_writers_hold_different_lanes_and_wait_only_when_all_are_held(
    services: Services, sql: asyncpg.Connection
) -> None:
    async with services.db.session() as session:
        lanes = (await session.get(AuditChainHead, 1)).lanes  # type: ignore[union-attr]
    holders, taken = await _hold_lanes(services.settings, lanes)
    try:
        assert sorted(lane for lane in taken if lane is not None) == list(range(lanes))  # K lanes, none waited
        extra, more = await _hold_lanes(services.settings, 1)
        holders += extra
        assert more == [None]  # every lane held: a free one is not found (the writer then waits for one)
        waiting = asyncio.create_task(_write(services, "test.waited"))
        # the commit waits on a lane's lock, not on anything else
        deadline = asyncio.get_running_loop().time() + 30
        while not await sql.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%audit_chain_lanes%'"
        ):
            assert asyncio.get_running_loop().time() < deadline, "the writer never waited for a lane"
            assert not waiting.done()
            await asyncio.sleep(0.05)
    finally:
        await _release(holders)
    (row_id,) = await asyncio.wait_for(waiting, 30)
    async with services.db.session() as session:
        assert (await session.get(AuditLog, row_id)).chain_seq is not None  # type: ignore[union-attr]
    assert (await _verify(services)).ok


async def test_a_session_opened_while_every_lane_is_held_waits_for_one_and_is_chained(
    services: Services, sql: asyncpg.Connection
) -> None:
    """The API's hot path inserts its audit rows already chained: when every lane is held it waits for one, and what
    it wrote (request text with a quote and Thai in it) verifies."""
    async with services.db.transaction() as session:
        _, key = await factories.create_app(session, slug="chain-wait", name="Chain wait")
        lanes = (await session.get(AuditChainHead, 1)).lanes  # type: ignore[union-attr]
    user = "o'brien ไทย \\x00"
    holders, _ = await _hold_lanes(services.settings, lanes)
    async with asgi_client(create_app(services=services)) as client:
        try:
            opening = asyncio.create_task(
                client.post(
                    "/api/v1/sessions",
                    json={"externalUserId": user, "appSlug": "chain-wait"},
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
            deadline = asyncio.get_running_loop().time() + 30
            while not await sql.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%audit_chain_lanes%'"
            ):
                assert asyncio.get_running_loop().time() < deadline, "the session never waited for a lane"
                assert not opening.done()
                await asyncio.sleep(0.05)
        finally:
            await _release(holders)
        response = await asyncio.wait_for(opening, 30)
    assert response.status_code == 201
    async with services.db.session() as session:
        rows = (
            await session.scalars(select(AuditLog).where(AuditLog.actor == "app:chain-wait").order_by(AuditLog.id))
        ).all()
    assert [row.action for row in rows] == ["customer.created", "billing_session.created"]
    assert rows[0].details == {"external_user_id": user}
    assert rows[1].entity_id == response.json()["id"]
    assert all(row.chain_seq is not None for row in rows)
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems


async def test_a_change_in_one_lane_is_named_and_the_other_lanes_verify(
    services: Services, sql: asyncpg.Connection
) -> None:
    holders, (held,) = await _hold_lanes(services.settings, 1)
    try:
        (elsewhere,) = await asyncio.wait_for(_write(services, "test.other_lane"), 30)  # does not wait for `held`
    finally:
        await _release(holders)
    (in_held,) = await _write(services, "test.held_lane")
    lanes = dict(
        await sql.fetch("SELECT id, chain_lane FROM audit_log WHERE id = ANY($1::bigint[])", [elsewhere, in_held])
    )
    assert lanes[in_held] == held and lanes[elsewhere] != held
    before = (await _verify(services)).rows
    await sql.execute("UPDATE audit_log SET entity_id = 'x' WHERE id = $1", elsewhere)
    try:
        verdict = await _verify(services)
    finally:
        await sql.execute("UPDATE audit_log SET entity_id = '0' WHERE id = $1", elsewhere)
    assert verdict.problems == [f"row {elsewhere}: its content was changed after it was written"]
    assert verdict.rows == before  # every lane was walked to its end
    assert (await _verify(services)).ok


async def test_a_row_moved_to_another_lane_or_a_deleted_lane_end_is_named(
    services: Services, sql: asyncpg.Connection
) -> None:
    (row_id,) = await _write(services, "test.moved")
    lane = await sql.fetchval("SELECT chain_lane FROM audit_log WHERE id = $1", row_id)
    saved = await sql.fetchrow("SELECT * FROM audit_chain_lanes WHERE id = $1", lane)
    await sql.execute("DELETE FROM audit_chain_lanes WHERE id = $1", lane)
    try:
        assert f"lane {lane}: its end row (audit_chain_lanes) was deleted" in (await _verify(services)).problems
    finally:
        await sql.execute(
            "INSERT INTO audit_chain_lanes (id, last_seq, last_hash) VALUES ($1, $2, $3)", *saved.values()
        )
    await sql.execute("UPDATE audit_log SET chain_lane = 999 WHERE id = $1", row_id)
    try:
        problems = (await _verify(services)).problems
        assert f"row {row_id}: it names a chain lane that does not exist" in problems
        assert any(p.startswith(f"lane {lane} ends at position") for p in problems)  # and its lane lost its tail
    finally:
        await sql.execute("UPDATE audit_log SET chain_lane = $2 WHERE id = $1", row_id, lane)
    assert (await _verify(services)).ok


def _entries(action: str, count: int) -> list[dict[str, object]]:
    return [
        {
            "actor": audit.STRIPE,
            "action": action,
            "entity_type": "test",
            "entity_id": i,
            "details": {"n": i, "text": "o'brien ไทย é", "nested": {"b": [1, 2.5, None], "a": True}},
        }
        for i in range(count)
    ]


async def _rows_of(services: Services, action: str) -> list[AuditLog]:
    async with services.db.session() as session:
        return list(
            (await session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).all()
        )


async def test_rows_recorded_together_are_inserted_chained_at_commit_and_verify(services: Services) -> None:
    async with services.db.transaction() as session:
        await audit.record_many(session, _entries("test.many", 3))
        now = await session.scalar(select(func.now()))
    rows = await _rows_of(services, "test.many")
    assert [r.entity_id for r in rows] == ["0", "1", "2"]
    assert rows[2].details == {"n": 2, "text": "o'brien ไทย é", "nested": {"b": [1, 2.5, None], "a": True}}
    assert {r.at for r in rows} == {now}  # the transaction's time, as the column's default gives
    first = rows[0].chain_seq
    assert first is not None and [r.chain_seq for r in rows] == [first, first + 1, first + 2]
    assert {r.chain_lane for r in rows} == {rows[0].chain_lane}
    assert rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems


async def test_rows_recorded_together_and_one_by_one_join_one_chain(services: Services) -> None:
    async with services.db.transaction() as session:
        await audit.record(session, actor=audit.SYSTEM, action="test.mixed", entity_id="first")
        await audit.record_many(session, _entries("test.mixed", 2))
    rows = await _rows_of(services, "test.mixed")
    assert [r.entity_id for r in rows] == ["first", "0", "1"]
    assert rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    assert (await _verify(services)).ok


async def test_rows_recorded_together_in_a_rolled_back_savepoint_are_gone(services: Services) -> None:
    async with services.db.transaction() as session:
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await audit.record_many(session, _entries("test.savepoint", 2))
                raise RuntimeError("abandon the savepoint")
        await audit.record_many(session, _entries("test.kept", 1))
    assert await _rows_of(services, "test.savepoint") == []
    assert [r.entity_id for r in await _rows_of(services, "test.kept")] == ["0"]
    assert (await _verify(services)).ok


async def test_rows_recorded_together_while_every_lane_is_held_wait_for_one(services: Services) -> None:
    async with services.db.session() as session:
        lanes = (await session.get(AuditChainHead, 1)).lanes  # type: ignore[union-attr]
    holders, _ = await _hold_lanes(services.settings, lanes)

    async def write() -> None:
        async with services.db.transaction() as session:
            await audit.record_many(session, _entries("test.many_waited", 2))

    try:
        waiting = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        assert not waiting.done()
    finally:
        await _release(holders)
    await asyncio.wait_for(waiting, 30)
    rows = await _rows_of(services, "test.many_waited")
    assert len(rows) == 2 and all(r.chain_seq is not None for r in rows)
    assert (await _verify(services)).ok


async def test_concurrent_writers_of_rows_recorded_together_leave_a_valid_chain(services: Services) -> None:
    assert services.settings.database_url is not None
    db = Database(
        services.settings.database_url, null_pool=True, audit_key=chain_key(services.settings.audit_chain_secret)
    )

    async def writer(n: int) -> None:
        for _ in range(3):
            async with db.transaction() as session:
                await audit.record_many(session, _entries("test.many_concurrent", 2))

    try:
        await asyncio.gather(*(writer(n) for n in range(20)))
    finally:
        await db.dispose()
    rows = await _rows_of(services, "test.many_concurrent")
    assert len(rows) == 20 * 3 * 2 and all(r.chain_seq is not None for r in rows)
    verdict = await _verify(services)
    assert verdict.ok, verdict.problems
