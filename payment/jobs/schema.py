"""Procrastinate's schema inside our Alembic history.

asyncpg cannot run several statements as one prepared statement, so the schema SQL goes through the raw driver
connection (asyncpg's `execute` without arguments uses the simple query protocol).
"""

from __future__ import annotations

from typing import Any

from procrastinate.schema import SchemaManager
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

# Everything procrastinate's schema.sql creates, dropped in dependency order.
_DROP_SQL = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
    procrastinate_workers CASCADE;
DO $$
DECLARE f record;
BEGIN
  FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%' LOOP
    EXECUTE 'DROP FUNCTION IF EXISTS ' || f.sig || ' CASCADE';
  END LOOP;
END $$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_status, procrastinate_job_event_type CASCADE;
"""


def _run_script(connection: Connection, sql: str) -> None:
    raw: Any = connection.connection.driver_connection
    # The alembic connection is sync-wrapped asyncpg: run the coroutine on its loop.
    awaitable = raw.execute(sql)
    await_only(awaitable)


def create_procrastinate_schema(connection: Connection) -> None:
    _run_script(connection, SchemaManager.get_schema())


def drop_procrastinate_schema(connection: Connection) -> None:
    _run_script(connection, _DROP_SQL)
