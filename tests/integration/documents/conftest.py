"""Documents are numbered and rendered across committed transactions: these tests use a real Database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from payment.audit.chain import chain_key
from payment.db import Database
from tests.support.factories import SECRET


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=30, pool_timeout=60, audit_key=chain_key(SECRET))
    yield db
    await db.dispose()
