"""The two helpers other features reuse: the database-held rate limit and keyset pages with exact totals."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment import ratelimit
from payment.listing import exact_count, keyset_page, parse_after
from payment.models import Customer
from payment.runtime import Services
from tests.support import factories


async def test_concurrent_attempts_never_exceed_the_limit(admin_services: Services) -> None:
    async def attempt() -> bool:
        async with admin_services.db.transaction() as session:
            return (await ratelimit.hit(session, "test:concurrent", limit=5)).allowed

    outcomes = await asyncio.gather(*(attempt() for _ in range(12)))
    assert sorted(outcomes) == [False] * 7 + [True] * 5


async def test_a_refusal_says_when_to_retry(db: AsyncSession) -> None:
    for _ in range(3):
        assert (await ratelimit.hit(db, "test:retry", limit=3, window_seconds=60)).allowed
    verdict = await ratelimit.hit(db, "test:retry", limit=3, window_seconds=60)
    assert not verdict.allowed and verdict.attempts == 3 and 1 <= verdict.retry_after_seconds <= 60
    assert (await ratelimit.hit(db, "test:other-key", limit=3)).allowed


async def test_keyset_pages_walk_every_row_once_newest_first_with_the_total(db: AsyncSession) -> None:
    made = [await factories.create_customer(db, email=f"keyset{n}@example.com") for n in range(7)]
    where = [Customer.email.like("keyset%")]
    seen: list[int] = []
    after = None
    while True:
        page = await keyset_page(
            db, select(Customer), key=Customer.id, after=after, limit=3, count_model=Customer, where=where
        )
        assert page.total == 7
        seen += [c.id for c in page.rows]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted((c.id for c in made), reverse=True)
    assert await exact_count(db, Customer, where) == 7


def test_cursors_from_the_query_string_are_checked() -> None:
    assert [parse_after(v) for v in ("42", " 7 ", "", "-1", "0", "x", "9" * 30, None)] == [
        42,
        7,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
