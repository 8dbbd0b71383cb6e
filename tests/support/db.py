"""Real PostgreSQL for tests: embedded on tmpfs (or TEST_DATABASE_URL), a migrated template, a clone per module."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from itertools import count
from pathlib import Path
from typing import ParamSpec, TypeVar

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from payment import migrate
from payment.config import Settings
from payment.dburl import libpq_url, sqlalchemy_url, with_database
from payment.embedded_pg import EmbeddedPostgres

_clone_numbers = count(1)
T = TypeVar("T")
P = ParamSpec("P")


def _tmp_root() -> str:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else tempfile.gettempdir()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the `postgres` database on a server the tests may create databases in."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield libpq_url(configured)
        return
    from payment.embedded_pg import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="aquoris-test-pg-", dir=_tmp_root()) as folder:
        server = EmbeddedPostgres(folder)
        server.start()
        try:
            yield server.url("postgres")
        finally:
            server.stop()


async def admin_execute(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(libpq_url(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per run; clones of it are cheap (FILE_COPY)."""
    name = f"aquoris_template_{os.getpid()}"
    await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}"')
    await admin_execute(pg_server_url, f'CREATE DATABASE "{name}"')
    url = with_database(pg_server_url, name)
    await migrate.upgrade_async(url)
    yield name
    await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def clone_database(pg_server_url: str, template: str, label: str) -> str:
    safe = re.sub(r"[^a-z0-9_]", "_", label.lower())[-40:]
    name = f"t{os.getpid()}_{next(_clone_numbers)}_{safe}"
    await admin_execute(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return name


@pytest.fixture(scope="module")
async def database_url(
    pg_server_url: str, template_database: str, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A fresh, migrated database for this test module."""
    name = await clone_database(pg_server_url, template_database, request.module.__name__)
    yield with_database(pg_server_url, name)
    await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session whose work is rolled back after the test (services flush; they never commit)."""
    engine = create_async_engine(sqlalchemy_url(database_url))
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()
    await engine.dispose()


def settings_for(database_url: str, **overrides: object) -> Settings:
    """Settings for a test app: APP_ENV=test, the module's database, the sandbox when given."""
    return Settings(app_env="test", database_url=database_url, login_rate_limit=1000).replace(**overrides)


def in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking or asyncio work (`in_thread(asyncio.run, coro)`) on a thread of its own: browser tests run while
    Playwright's sync API owns the main thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args, **kwargs).result()


@contextmanager
def own_database(pg_server_url: str, name: str) -> Iterator[str]:
    """From sync code: a freshly migrated database `name` of this test's own, dropped afterwards; yields its URL."""
    in_thread(asyncio.run, admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    in_thread(asyncio.run, admin_execute(pg_server_url, f'CREATE DATABASE "{name}"'))
    try:
        url = with_database(pg_server_url, name)
        in_thread(migrate.upgrade, url)
        yield url
    finally:
        in_thread(asyncio.run, admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test's own (with an empty database `payment`), to stop and start at will."""
    root = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="aquoris-fault-pg-", dir=root) as folder:
        server = EmbeddedPostgres(folder)
        server.start()
        try:
            server.create_database("payment")
            yield server
        finally:
            server.stop()


class InSession:
    """The test's session as a `payment.db.Transactions`: each transaction a service opens is a savepoint of it,
    so what the service commits is still rolled back with the test."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._session.begin_nested():
            yield self._session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        yield self._session


def in_db(session: AsyncSession) -> InSession:
    """Hand a service that opens its own transactions the test's session (see `InSession`)."""
    return InSession(session)
