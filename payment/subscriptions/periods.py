"""Our month arithmetic: the one calendar rule for manual and granted periods (the dashboard's SQL follows it)."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_after(start: datetime, *, months: int = 0, days: int = 0) -> datetime:
    """The end of a period of `months` months and `days` days from `start`."""
    return add_months(start, months) + timedelta(days=days)
