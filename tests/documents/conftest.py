"""Documents are numbered and rendered across committed transactions: these tests use a real Database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from payment.db import Database


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=30)
    yield db
    await db.dispose()
