"""Month by month for the charts: MRR at each month end and revenue per month, the last 12 UTC months, per currency.

MRR at a month end (the instant the next month starts, UTC) is rebuilt from the running MRR changes that triggers
keep (no status history is stored): a subscription counts from when it started (created, and past any trial) until
it ended, if it is active now or has ended since, at today's monthly value (its plan's price, or a manual payment
over its period) — the values the MRR card uses. The current month's point is the MRR card itself, at `now`.
Revenue per month uses the revenue card's rule: invoices paid in the month minus refunds succeeded in the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard.metrics import day_start, manual_monthly, mrr, round_half_up, today_so_far

MONTHS = 12

MRR_HISTORY_FORMULA = (
    "MRR at each month end (UTC): subscriptions started by then (past any trial) and not yet ended, "
    "that are active now or have ended since, at today's monthly value; this month = the MRR card"
)
REVENUE_HISTORY_FORMULA = (
    "Per UTC month: invoices paid in the month (incl. later refunded) − refunds succeeded in the month, per currency"
)


@dataclass(frozen=True)
class MonthlySeries:
    """One value per month (oldest first) for each currency, in minor units."""

    months: list[datetime]
    values: dict[str, list[int]]
    formula: str


def month_starts(now: datetime, count: int = MONTHS) -> list[datetime]:
    """The first instants (UTC) of the `count` calendar months ending with the one holding `now`."""
    now = now.astimezone(UTC)
    year, month = now.year, now.month
    starts: list[datetime] = []
    for _ in range(count):
        starts.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return starts[::-1]


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


# Changes before the first point are folded into one opening balance at the first point.
_MRR_DELTAS = text("""
    SELECT greatest(boundary, :first) AS boundary, plan_id, source, paid_currency, period_us,
           sum(subscriptions)::bigint AS subs, sum(paid_cents)::bigint AS paid
    FROM dashboard_mrr_deltas WHERE boundary <= :last
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(subscriptions) <> 0 OR sum(paid_cents) <> 0
""")


async def mrr_by_month(session: AsyncSession, *, now: datetime, count: int = MONTHS) -> MonthlySeries:
    """MRR at the end of each of the last months, per currency, rebuilt from subscriptions' start, trial and end
    times at today's monthly values; the current month's point is the MRR card at `now`."""
    starts = month_starts(now, count)
    boundaries = [_next_month(s) for s in starts[:-1]]
    plans = {
        int(r.id): (str(r.currency), str(r.interval), int(r.price_cents))
        for r in await session.execute(text("SELECT id, currency, interval, price_cents FROM plans"))
    }
    exact: dict[str, list[Fraction]] = {}
    rows = await session.execute(_MRR_DELTAS, {"first": boundaries[0], "last": boundaries[-1]})
    for row in rows.mappings():
        if row["source"] == "stripe":
            currency, interval, price = plans[int(row["plan_id"])]
            value = Fraction(price * int(row["subs"]), 12 if interval == "year" else 1)
        else:
            currency = str(row["paid_currency"])
            value = manual_monthly(int(row["paid"]), int(row["period_us"]))
        if value == 0:
            continue
        series = exact.setdefault(currency, [Fraction(0)] * count)
        for k, boundary in enumerate(boundaries):
            if row["boundary"] <= boundary:
                series[k] += value
    current = await mrr(session, now=now)
    currencies = sorted(set(exact) | set(current.amounts))
    values = {
        c: [*(round_half_up(v) for v in exact.get(c, [Fraction(0)] * count)[:-1]), current.amounts.get(c, 0)]
        for c in currencies
    }
    return MonthlySeries(months=starts, values=values, formula=MRR_HISTORY_FORMULA)


# whole days from the running totals; today's rows (up to now) come from the tables through today_so_far()
_REVENUE_BY_MONTH = text("""
    SELECT date_trunc('month', day::timestamp)::date AS month, currency,
           sum(paid_cents - refunded_cents)::bigint AS cents
    FROM dashboard_revenue_days WHERE day >= :first AND day < :today
    GROUP BY 1, 2
""")


async def revenue_by_month(session: AsyncSession, *, now: datetime, count: int = MONTHS) -> MonthlySeries:
    """Revenue of each of the last months (the current one up to `now`), per currency: invoices paid in the month
    minus refunds succeeded in the month."""
    starts = month_starts(now, count)
    index = {s.date(): k for k, s in enumerate(starts)}
    values: dict[str, list[int]] = {}
    rows = await session.execute(_REVENUE_BY_MONTH, {"first": starts[0].date(), "today": day_start(now).date()})
    for month, currency, cents in rows:
        values.setdefault(str(currency), [0] * count)[index[month]] += int(cents)
    paid, refunded = await today_so_far(session, now)
    for currency in set(paid) | set(refunded):
        values.setdefault(currency, [0] * count)[-1] += paid.get(currency, 0) - refunded.get(currency, 0)
    return MonthlySeries(months=starts, values={c: values[c] for c in sorted(values)}, formula=REVENUE_HISTORY_FORMULA)
