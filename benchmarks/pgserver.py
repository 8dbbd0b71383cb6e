"""The PostgreSQL server a benchmark runs on: TEST_DATABASE_URL, or an embedded one of its own; and a database of
its own on that server for one run."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payment.dburl import libpq_url, with_database


@contextmanager
def server(data_dir: str | None = None) -> Iterator[str]:
    """URL of the server's `postgres` database; an embedded server keeps its data in `data_dir` (reusable between
    runs) or in a temporary folder, on tmpfs where there is one."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield libpq_url(configured)
        return
    from payment.embedded_pg import EmbeddedPostgres

    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="aquoris-bench-", dir=shm) as scratch:
        pg = EmbeddedPostgres(data_dir or scratch)
        pg.start()
        try:
            yield pg.url("postgres")
        finally:
            pg.stop()


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """URL of a new, empty database for one run: `name` (made unique by the process id) created on
    TEST_DATABASE_URL's server and dropped after, or `payment` on an embedded server of its own."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if not configured:
        with server() as url:
            asyncio.run(_admin(url, 'CREATE DATABASE "payment"'))
            yield with_database(url, "payment")
        return
    name = f"{name}_{os.getpid()}"
    asyncio.run(_admin(configured, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(configured, name)
    finally:
        asyncio.run(_admin(configured, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
