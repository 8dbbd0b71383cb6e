"""The Procrastinate app: one per process, tasks from the blueprints, psycopg 3 against DATABASE_URL."""

from __future__ import annotations

from typing import Any

import procrastinate
import psycopg

from payment.config import Settings
from payment.dburl import libpq_url
from payment.jobs import NAMESPACE
from payment.jobs.tasks import make_blueprint


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    """Each of Procrastinate's queries is one statement (a call of one of its SQL functions: fetch, finish, retry,
    defer, heartbeat), atomic by itself, and no two share a transaction (each takes a pooled connection of its
    own): in a transaction psycopg would wrap each in BEGIN ... COMMIT, two more round trips (and their CPU in the
    worker and in PostgreSQL) for every fetch and every finish of a job. (Not a connect keyword: Procrastinate's
    LISTEN connection passes autocommit itself.)"""
    await connection.set_autocommit(True)


def create_job_app(settings: Settings) -> procrastinate.App:
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set")
    # Procrastinate's pool checks each connection before use, so deferring recovers after PostgreSQL restarts.
    kwargs: dict[str, object] = {"application_name": "aquoris-payment-jobs"}
    if settings.database_pooler == "pgbouncer":  # no server-side prepared statements across transactions
        kwargs["prepare_threshold"] = None
    # up to DB_POOL_SIZE connections (at least psycopg's 4): a worker fetches and finishes jobs on these
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings.database_url),
        kwargs=kwargs,
        max_size=max(4, settings.db_pool_size),
        configure=_autocommit,
    )
    app = procrastinate.App(connector=connector, import_paths=[])
    app.add_tasks_from(make_blueprint(reconciliation_cron=settings.reconciliation_cron), namespace=NAMESPACE)
    return app
