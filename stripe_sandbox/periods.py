"""A subscription's billing periods: interval arithmetic on the anchor, and the periods stored on its items."""

from __future__ import annotations

import calendar
import copy
from datetime import UTC, datetime, timedelta

from .store import JSON


def add_interval(ts: int, interval: str, count: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    if interval == "day":
        return int((dt + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((dt + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    month_index = dt.month - 1 + months
    year, month = dt.year + month_index // 12, month_index % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def period_end_after(sub: JSON, cycles: int) -> int:
    price = sub["items"]["data"][0]["price"]
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    return add_interval(int(sub["_anchor"]), recurring["interval"], int(recurring["interval_count"]) * cycles)


def current_period(sub: JSON) -> tuple[int, int]:
    item = sub["items"]["data"][0]
    return int(item["current_period_start"]), int(item["current_period_end"])


def set_period(sub: JSON, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item["current_period_start"] = start
        item["current_period_end"] = end


def items_snapshot(sub: JSON) -> JSON:
    return {"data": copy.deepcopy(sub["items"]["data"])}
