"""Copy Stripe's answer about a subscription onto our row (the local state always follows Stripe's)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

from payment.models import Subscription
from payment.models.billing import SUBSCRIPTION_STATUSES
from payment.subscriptions.paid_extension import as_seen_by_us


def from_timestamp(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(int(value), UTC)


def stripe_period(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The current period; recent API versions carry it on the subscription items only."""
    items = ((data.get("items") or {}).get("data")) or []
    start = data.get("current_period_start") or (items[0].get("current_period_start") if items else None)
    end = data.get("current_period_end") or (items[0].get("current_period_end") if items else None)
    return from_timestamp(start), from_timestamp(end)


def apply_stripe_subscription(sub: Subscription, data: dict[str, Any]) -> None:
    """Set status, period and cancellation fields from a Stripe subscription object."""
    data = as_seen_by_us(data)
    status = str(data.get("status") or sub.status)
    if status in SUBSCRIPTION_STATUSES:
        sub.status = status
    start, end = stripe_period(data)
    if start is not None:
        sub.current_period_start = start
    if end is not None:
        sub.current_period_end = end
    sub.cancel_at_period_end = bool(data.get("cancel_at_period_end")) or (
        data.get("cancel_at") is not None and end is not None and from_timestamp(data["cancel_at"]) == end)
    sub.canceled_at = from_timestamp(data.get("canceled_at"))
    sub.ended_at = from_timestamp(data.get("ended_at"))
    sub.trial_end = from_timestamp(data.get("trial_end"))


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_after(start: datetime, *, months: int = 0, days: int = 0) -> datetime:
    return add_months(start, months) + timedelta(days=days)
