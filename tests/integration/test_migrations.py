"""Migrations: up, down to nothing, up again, and the models match the migrated schema."""

from __future__ import annotations

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from payment import migrate
from payment.dburl import libpq_url, sqlalchemy_url, with_database
from payment.models import Base
from tests.support.db import admin_execute


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        types = await conn.fetch(
            "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'c') "
            "AND typname LIKE 'procrastinate%'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows} | {f"type:{r['typname']}" for r in types}


async def test_upgrade_downgrade_upgrade(pg_server_url: str) -> None:
    await admin_execute(pg_server_url, 'DROP DATABASE IF EXISTS "migration_cycle"')
    await admin_execute(pg_server_url, 'CREATE DATABASE "migration_cycle"')
    url = with_database(pg_server_url, "migration_cycle")
    try:
        await migrate.upgrade_async(url)
        first = await _tables(url)
        assert {"subscriptions", "invoices", "refunds", "stripe_events", "audit_log", "procrastinate_jobs"} <= first
        assert "type:procrastinate_job_status" in first

        await __import__("asyncio").to_thread(migrate.downgrade, url, "base")
        assert await _tables(url) == {"alembic_version"}

        await migrate.upgrade_async(url)
        assert await _tables(url) == first
    finally:
        await admin_execute(pg_server_url, 'DROP DATABASE IF EXISTS "migration_cycle" WITH (FORCE)')


async def test_models_match_migrated_schema(database_url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(database_url))

    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(
            sync_conn,  # type: ignore[arg-type]
            opts={
                "include_name": lambda name, type_, parent: not (type_ == "table" and name.startswith("procrastinate")),
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    await engine.dispose()
    assert differences == []


def test_history_is_one_line() -> None:
    from alembic.script import ScriptDirectory

    from payment.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/none"))
    assert len(script.get_heads()) == 1, "merge or re-parent migrations so there is one head"
