"""Hold one Stripe call of ours in flight and look at PostgreSQL meanwhile.

`while_held(...)` asks the sandbox to park the next API request matching a method and path (`/_sandbox/holds`),
starts the action, waits until its request is parked (the action is then waiting for Stripe), and looks at the
test database from a connection of its own:

- every connection `idle in transaction` (pg_stat_activity of this database): a transaction kept open while the
  caller waits for something outside PostgreSQL, which is what a Stripe call inside a transaction looks like;
- whether the row under test can be locked (`SELECT ... FOR UPDATE NOWAIT`): a row lock held across the call
  makes it fail at once.

Then the request is released and the action's result returned with what was seen. Nothing is timed: the look
happens while the request is certainly in flight, so a transaction held across it is certainly seen (the
self-check in tests/integration/operations/test_stripe_outside_transactions.py holds one on purpose).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx

from payment.dburl import libpq_url
from payment.runtime import Services
from tests.support.stripe import AUTH

T = TypeVar("T")

IN_TRANSACTION = """
SELECT pid, state, application_name, left(query, 300) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'
ORDER BY pid
"""


@dataclass(frozen=True)
class Seen:
    """What PostgreSQL showed while the Stripe request was parked."""

    path: str  # the Stripe request that was held
    in_transaction: tuple[str, ...]  # connections idle inside an open transaction (pid, application, last query)
    row_lockable: bool  # another connection could lock the row at once
    row: dict[str, Any] | None  # the row as another connection read it then

    def assert_free(self) -> None:
        """No transaction open and the row not locked while Stripe was answering."""
        assert not self.in_transaction, f"open transactions while {self.path} was in flight: {self.in_transaction}"
        assert self.row_lockable, f"the row was locked while {self.path} was in flight"


async def _control(sandbox: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(headers=AUTH, timeout=70) as http:
        return await http.request(method, f"{sandbox}/_sandbox/{path}", **kwargs)


async def _look(database_url: str, table: str, row_id: int) -> tuple[tuple[str, ...], bool, dict[str, Any] | None]:
    conn = await asyncpg.connect(libpq_url(database_url), server_settings={"application_name": "holding-probe"})
    try:
        open_now = tuple(
            f"{r['pid']} {r['application_name']} {r['state']}: {r['query']}" for r in await conn.fetch(IN_TRANSACTION)
        )
        row = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", row_id)
        try:
            async with conn.transaction():
                await conn.execute(f"SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE NOWAIT", row_id)
            lockable = True
        except asyncpg.LockNotAvailableError:
            lockable = False
        return open_now, lockable, dict(row) if row is not None else None
    finally:
        await conn.close()


async def while_held(
    services: Services,
    sandbox: str,
    action: Awaitable[T],
    *,
    method: str,
    path: str,
    row: tuple[str, int],
    meanwhile: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 30,
) -> tuple[T, Seen]:
    """Run `action`, park its Stripe request `method path...` (a prefix), look at the database and at `row`
    (table, id) while it is parked, run `meanwhile` (e.g. a second action on the same row), then let it go; the
    action's result and what was seen."""
    made = await _control(sandbox, "POST", "holds", data={"method": method, "path_prefix": path})
    assert made.status_code == 200, made.text
    hold = made.json()["id"]
    task = asyncio.ensure_future(action)
    try:
        parked = asyncio.ensure_future(_control(sandbox, "POST", f"holds/{hold}/wait", data={"timeout": str(timeout)}))
        await asyncio.wait({task, parked}, return_when=asyncio.FIRST_COMPLETED)
        if not parked.done():
            parked.cancel()
            error = task.exception()
            raise AssertionError(f"the action ended without calling {method} {path}...: {error!r}")
        waited = parked.result()
        assert waited.status_code == 200, f"no {method} {path}... came within {timeout} s: {waited.text}"
        in_transaction, lockable, seen_row = await _look(str(services.settings.database_url), *row)
        seen = Seen(str(waited.json()["parked_path"]), in_transaction, lockable, seen_row)
        if meanwhile is not None:
            await meanwhile()
    except BaseException:
        await _control(sandbox, "POST", f"holds/{hold}/release")
        with suppress(Exception):
            await task
        raise
    await _control(sandbox, "POST", f"holds/{hold}/release")
    return await task, seen
