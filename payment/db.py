"""Engine, sessions and the transaction boundary that adapters own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from payment.dburl import sqlalchemy_url


class Database:
    """One engine per process; services receive sessions, adapters open transactions."""

    def __init__(self, url: str, *, pool_size: int = 10, null_pool: bool = False,
                 connect_timeout: float = 5.0, pool_timeout: float = 3.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        kwargs: dict[str, object] = {
            "connect_args": {"timeout": connect_timeout, "server_settings": {"application_name": "aquoris-payment"}},
        }
        if null_pool:
            kwargs["poolclass"] = NullPool
        else:
            # a request waits this long for a pooled connection, then answers 503 (payment.http), not 30 s of queue
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800,
                          pool_timeout=pool_timeout)
        # hide_parameters: a failing statement's error (and any log of it) never carries the values bound to it
        self.engine: AsyncEngine = create_async_engine(sqlalchemy_url(url), hide_parameters=True, **kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._probe_engine: AsyncEngine | None = None
        self._probe: asyncio.Future[bool] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing is committed."""
        async with self.sessionmaker() as session:
            yield session

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers within the timeout, on a connection of its own: a busy pool is not a
        sick database. Concurrent pings share one probe, so a flood of health checks opens one connection."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_once(timeout))
        return await asyncio.shield(self._probe)

    async def _probe_once(self, timeout: float) -> bool:
        if self._probe_engine is None:
            self._probe_engine = create_async_engine(sqlalchemy_url(self.url), poolclass=NullPool, connect_args={
                "timeout": timeout, "server_settings": {"application_name": "aquoris-payment-health"}})
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
        await self.engine.dispose()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
