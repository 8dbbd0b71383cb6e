"""MRR of a manual payment counts its months by our own calendar (Jan 31 + 1 month = Feb 28), so a "1 month"
payment is one month of revenue whatever the month's length, never 28/30 or 31/30 of one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard.metrics import MONTH_US, manual_monthly
from payment.subscriptions.periods import period_after

DAY_US = 86_400_000_000
CASES = [  # start, months, days
    (datetime(2027, 1, 31, 9, 30, tzinfo=UTC), 1, 0),  # ends Feb 28: 28 days, still one month
    (datetime(2028, 1, 31, 0, 0, tzinfo=UTC), 1, 0),  # leap year: ends Feb 29
    (datetime(2027, 1, 30, 12, 0, tzinfo=UTC), 1, 0),  # also ends Feb 28
    (datetime(2027, 3, 31, 23, 59, tzinfo=UTC), 1, 0),  # ends Apr 30
    (datetime(2027, 2, 28, 8, 0, tzinfo=UTC), 1, 0),  # ends Mar 28, not Mar 31
    (datetime(2026, 12, 31, 0, 0, tzinfo=UTC), 2, 0),  # across the year, ends Feb 28
    (datetime(2027, 1, 31, 0, 0, tzinfo=UTC), 1, 3),  # a month and three days: ends Mar 3
    (datetime(2026, 8, 31, 0, 0, tzinfo=UTC), 12, 0),  # a year from a month's last day
    (datetime(2027, 1, 15, 0, 0, tzinfo=UTC), 0, 10),  # days only
]


async def _period_us(db: AsyncSession, start: datetime, end: datetime) -> int:
    value = await db.scalar(
        text("SELECT dashboard_manual_period_us('manual', 29900, 'thb', :s, :e)"), {"s": start, "e": end}
    )
    assert value is not None
    return int(value)


@pytest.mark.parametrize(("start", "months", "days"), CASES)
async def test_a_period_of_our_months_is_that_many_months(
    db: AsyncSession, start: datetime, months: int, days: int
) -> None:
    end = period_after(start, months=months, days=days)
    assert await _period_us(db, start, end) == months * MONTH_US + days * DAY_US


async def test_one_month_from_january_31_is_one_month_of_mrr(db: AsyncSession) -> None:
    start = datetime(2027, 1, 31, 10, tzinfo=UTC)
    end = period_after(start, months=1)
    assert end == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert manual_monthly(29900, await _period_us(db, start, end)) == 29900  # was 29900 * 30/28 = 32035.7
    # a day short of the month is measured exactly, not rounded to a month
    assert await _period_us(db, start, end - timedelta(days=1)) == 27 * DAY_US
