"""The Procrastinate app: one per process, tasks from the blueprints, psycopg 3 against DATABASE_URL."""

from __future__ import annotations

import procrastinate
from psycopg_pool import AsyncConnectionPool

from payment.config import Settings
from payment.dburl import libpq_url


def create_job_app(settings: Settings) -> procrastinate.App:
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set")
    # `check`: after PostgreSQL restarts, pooled connections are dead; test each one before handing it out so
    # deferring and fetching jobs recover by themselves.
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(settings.database_url),
                                               kwargs={"application_name": "aquoris-payment-jobs"},
                                               check=AsyncConnectionPool.check_connection)
    app = procrastinate.App(connector=connector, import_paths=[])
    from payment.jobs.tasks import blueprint

    app.add_tasks_from(blueprint, namespace="payment")
    return app
