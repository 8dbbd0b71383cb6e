"""Our month arithmetic: the same day a month later, clamped to the month's last day, so a one-month period is one
month whatever the month's length (the dashboard's SQL follows the same rule; tests/dashboard checks it there)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment.subscriptions.periods import add_months, period_after


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (at(2027, 1, 31), 1, at(2027, 2, 28)),  # clamped to February's last day
        (at(2028, 1, 31), 1, at(2028, 2, 29)),  # a leap year's
        (at(2027, 3, 31), 1, at(2027, 4, 30)),
        (at(2027, 2, 28), 1, at(2027, 3, 28)),  # the same day, not the month's last day
        (at(2026, 12, 31), 2, at(2027, 2, 28)),  # across the year
        (at(2026, 8, 31), 12, at(2027, 8, 31)),
        (at(2027, 5, 15), 0, at(2027, 5, 15)),
        (at(2027, 3, 31), -1, at(2027, 2, 28)),  # backwards too
    ],
)
def test_a_month_later_is_the_same_day_clamped_to_the_month(start: datetime, months: int, end: datetime) -> None:
    assert add_months(start, months) == end


def test_the_time_of_day_and_zone_are_kept() -> None:
    moved = add_months(datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC), 1)
    assert moved == datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC) and moved.tzinfo is UTC


def test_a_period_adds_its_months_then_its_days() -> None:
    assert period_after(at(2027, 1, 31), months=1, days=3) == at(2027, 3, 3)  # Feb 28 + 3 days
    assert period_after(at(2027, 1, 15), days=10) == at(2027, 1, 25)
    assert period_after(at(2027, 1, 15)) == at(2027, 1, 15)
