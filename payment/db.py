"""Engine, sessions and the transaction boundary that adapters own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from payment.audit.chain import KEY, ChainedSession
from payment.dburl import sqlalchemy_url


class Database:
    """One engine per process; services receive sessions, adapters open transactions."""

    def __init__(self, url: str, *, pool_size: int = 10, null_pool: bool = False,
                 connect_timeout: float = 5.0, audit_key: bytes | None = None) -> None:
        self.url = url
        kwargs: dict[str, object] = {
            "connect_args": {"timeout": connect_timeout, "server_settings": {"application_name": "aquoris-payment"}},
        }
        if null_pool:
            kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(sqlalchemy_url(url), **kwargs)
        # audit rows join the tamper-evident chain at commit (payment/audit/chain.py), keyed by audit_key
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=ChainedSession,
                                               info={KEY: audit_key} if audit_key else {})
        # run at the end of every transaction, inside it, just before the commit (the outbox writers)
        self.before_commit: list[Callable[[AsyncSession], Awaitable[None]]] = []

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

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers within the timeout."""
        async def probe() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(probe(), timeout)
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
