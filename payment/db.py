"""Engine, sessions and the transaction boundary that adapters own."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from payment.audit.chain import KEY, ChainedSession
from payment.dburl import sqlalchemy_url

T = TypeVar("T")

# What a connection PostgreSQL dropped (restart, failover, idle kill) raises on its next use.
DROPPED = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    # a kept connection whose server ended it (its notice read, its socket not yet closed) refuses the next
    # statement with "cannot switch to state ...; another operation is in progress", before sending anything
    asyncpg.InternalClientError,
)


class Transactions(Protocol):
    """What a service that opens its own short transactions needs (a `Database`; tests may pass a stand-in that
    runs each one as a savepoint of the test's session)."""

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    def session(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class Database:
    """One engine per process; services receive sessions, adapters open transactions."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        null_pool: bool = False,
        connect_timeout: float = 5.0,
        pool_timeout: float = 3.0,
        audit_key: bytes | None = None,
        behind_pgbouncer: bool = False,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        kwargs: dict[str, object] = {
            "connect_args": {"timeout": connect_timeout, "server_settings": {"application_name": "aquoris-payment"}},
        }
        self.behind_pgbouncer = behind_pgbouncer
        if behind_pgbouncer:
            # PgBouncer in transaction pooling hands each transaction any server connection: no statement cache,
            # and the statements SQLAlchemy prepares get names no other client can take
            connect_args = kwargs["connect_args"]
            assert isinstance(connect_args, dict)
            connect_args.update(
                statement_cache_size=0,
                prepared_statement_cache_size=0,
                prepared_statement_name_func=lambda: f"__aquoris_{uuid.uuid4().hex}__",
            )
        if null_pool:
            kwargs["poolclass"] = NullPool
        else:
            # No pre-ping (a round trip per checkout): a connection PostgreSQL dropped fails once, SQLAlchemy then
            # discards every connection older than the failure, and `on_driver`/`ping` retry on a fresh one.
            # No overflow: an overflow connection is closed when returned, so a burst would open (fork, SCRAM) and
            # close a PostgreSQL connection per request; requests wait for one of the pool's instead, at most
            # `pool_timeout` seconds, then answer 503 (payment.http) rather than queue for 30 s.
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_timeout=pool_timeout)
        # hide_parameters: a failing statement's error (and any log of it) never carries the values bound to it
        self.engine: AsyncEngine = create_async_engine(sqlalchemy_url(url), hide_parameters=True, **kwargs)
        self.audit_key = audit_key
        # audit rows join the tamper-evident chain at commit (payment/audit/chain.py), keyed by audit_key
        self.sessionmaker = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            sync_session_class=ChainedSession,
            info={KEY: audit_key} if audit_key else {},
        )
        # run at the end of every transaction, inside it, just before the commit (the outbox writers)
        self.before_commit: list[Callable[[AsyncSession], Awaitable[None]]] = []
        self._probe_engine: AsyncEngine | None = None
        self._probe: asyncio.Future[bool] | None = None
        # `on_driver` keeps the pool connections it takes checked out between its calls (a checkout through
        # SQLAlchemy costs about as much CPU as a short statement): all but a quarter of the pool (at least one), so
        # the ORM paths always have that share; a call finding all of its own busy waits for one (pool_timeout, then
        # a 503 like the pool's). With a pool of one (or none) it checks one out per call instead.
        self.pool_timeout = pool_timeout
        self._drivers: list[PoolProxiedConnection] = []  # idle
        self._drivers_out = 0  # checked out by on_driver, idle or busy
        self._drivers_max = 0 if null_pool else pool_size - max(1, pool_size // 4)
        self._driver_waiters: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session
            for hook in self.before_commit:
                await hook(session)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing is committed."""
        async with self.sessionmaker() as session:
            yield session

    async def on_driver(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run `work` on a pooled asyncpg connection outside any transaction (each statement commits on its own).
        A connection PostgreSQL dropped is discarded (with the idle ones kept beside it, which the same restart or
        failover dropped too) and `work` runs once more on another, so `work` must be safe to repeat when its
        statement may not have reached the server."""
        for attempt in (1, 2):
            pooled = await self._take_driver()
            driver: Any = pooled.driver_connection
            try:
                if not self.behind_pgbouncer:
                    result = await work(driver)
                else:
                    async with driver.transaction():  # keeps PgBouncer on one server connection throughout
                        result = await work(driver)
            except DROPPED:
                stale, self._drivers = [pooled, *self._drivers], []
                for gone in stale:
                    await self._discard_driver(gone)
                if attempt == 2:
                    raise
                continue
            except BaseException as exc:
                # cancelled mid-statement or left inside a transaction: never reuse it, SQLAlchemy opens another
                if (
                    not isinstance(exc, asyncio.CancelledError)
                    and not driver.is_closed()
                    and not driver.is_in_transaction()
                ):
                    self._give_back(pooled)
                else:
                    await self._discard_driver(pooled)
                raise
            self._give_back(pooled)
            return result
        raise AssertionError("unreachable")

    async def _take_driver(self) -> PoolProxiedConnection:
        if self._drivers:
            return self._drivers.pop()
        if self._drivers_max == 0:
            return await self.engine.raw_connection()
        if self._drivers_out >= self._drivers_max:
            waiter: asyncio.Future[PoolProxiedConnection | None] = asyncio.get_running_loop().create_future()
            self._driver_waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, self.pool_timeout)
            except BaseException as exc:
                with suppress(ValueError):
                    self._driver_waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():  # handed over just as this gave up: pass it on
                    passed = waiter.result()
                    if passed is None:
                        self._wake_for_place()
                    else:
                        self._give_back(passed)
                if isinstance(exc, TimeoutError):
                    raise PoolTimeout(f"no pooled connection came free within {self.pool_timeout} s") from None
                raise
            if handed is not None:
                return handed
        # a free place (a discarded connection left one when `handed` is None): take a connection from the pool
        self._drivers_out += 1
        try:
            return await self.engine.raw_connection()
        except BaseException:
            self._free_place()
            raise

    def _give_back(self, pooled: PoolProxiedConnection) -> None:
        if self._drivers_max == 0:
            pooled.close()  # back to SQLAlchemy's pool (its reset is a no-op: no SQLAlchemy transaction is open)
            return
        while self._driver_waiters:
            waiter = self._driver_waiters.popleft()
            if not waiter.done():
                waiter.set_result(pooled)
                return
        self._drivers.append(pooled)

    async def _discard_driver(self, pooled: PoolProxiedConnection) -> None:
        await greenlet_spawn(pooled.invalidate)
        if self._drivers_max:
            self._free_place()

    def _free_place(self) -> None:
        self._drivers_out -= 1
        self._wake_for_place()

    def _wake_for_place(self) -> None:
        """Tell the first caller waiting that it may take a connection from the pool itself."""
        while self._driver_waiters:
            waiter = self._driver_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def connections_in_use(self) -> int:
        """Pool connections checked out and in use now (the idle ones `on_driver` keeps are not)."""
        out: int = self.engine.pool.checkedout()  # type: ignore[attr-defined]
        return out - len(self._drivers)

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers within the timeout, on a connection of its own: a busy pool is not a
        sick database. Concurrent pings share one probe, so a flood of health checks opens one connection."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_once(timeout))
        return await asyncio.shield(self._probe)

    async def _probe_once(self, timeout: float) -> bool:
        if self._probe_engine is None:
            self._probe_engine = create_async_engine(
                sqlalchemy_url(self.url),
                poolclass=NullPool,
                connect_args={"timeout": timeout, "server_settings": {"application_name": "aquoris-payment-health"}},
            )
        engine = self._probe_engine

        async def probe() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(probe(), timeout)
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        kept, self._drivers = self._drivers, []
        for pooled in kept:
            await greenlet_spawn(pooled.close)
        self._drivers_out -= len(kept)
        await self.engine.dispose()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
