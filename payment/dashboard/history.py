"""Month by month for the charts: MRR at each month end and revenue per month, the last 12 UTC months, per currency.

MRR history is rebuilt from the columns we keep (no status history is stored): at an instant T a subscription
counts when it had started by T (created, and past any trial) and had not ended by T, and it is active now or has
ended since; each counts at today's monthly value (its plan's price, or a manual payment over its period), the same
value the MRR card uses. The point of the current month is at `now`, so it equals the MRR card.
Revenue per month uses the revenue card's rule: invoices paid in the month minus refunds succeeded in the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard.metrics import MANUAL_PERIOD_US_SQL, manual_monthly, round_half_up

MONTHS = 12

MRR_HISTORY_FORMULA = ("MRR at each month end (UTC), current month at now: subscriptions started by then (past any "
                       "trial) and not yet ended, that are active now or have ended since, at today's monthly value")
REVENUE_HISTORY_FORMULA = ("Per UTC month: invoices paid in the month (incl. later refunded) − refunds succeeded in "
                           "the month, per currency")


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


# For each subscription, the first point it counts at (b_start) and the first it no longer counts at (b_end):
# #{points < x} is width_bucket over x - 1 microsecond, so "counted at T" is exactly started <= T < ended.
_MRR_BUCKETS = text(f"""
    SELECT s.plan_id, s.source, s.paid_currency,
           CASE WHEN s.source = 'manual' THEN {MANUAL_PERIOD_US_SQL} END AS period_us,
           width_bucket(greatest(s.created_at, coalesce(s.trial_end, s.created_at)) - interval '1 microsecond',
                        CAST(:points AS timestamptz[])) AS b_start,
           CASE WHEN s.ended_at IS NULL THEN :count
                ELSE width_bucket(s.ended_at - interval '1 microsecond', CAST(:points AS timestamptz[])) END AS b_end,
           count(*) AS subs, sum(s.paid_amount_cents)::bigint AS paid
    FROM subscriptions s
    WHERE (s.status = 'active' OR s.ended_at IS NOT NULL)
      AND s.status NOT IN ('incomplete', 'incomplete_expired')
      AND (s.ended_at IS NULL OR s.ended_at > :first) AND s.created_at <= :last
      AND (s.source = 'stripe' OR (s.source = 'manual' AND s.paid_amount_cents > 0 AND s.paid_currency IS NOT NULL
                                   AND s.current_period_end > s.current_period_start))
    GROUP BY 1, 2, 3, 4, 5, 6
""")  # noqa: S608 - a constant SQL fragment, no input


async def mrr_by_month(session: AsyncSession, *, now: datetime, count: int = MONTHS) -> MonthlySeries:
    """MRR at the end of each of the last months (the current one at `now`), per currency, rebuilt from
    subscriptions' start, trial and end times at today's monthly values."""
    starts = month_starts(now, count)
    points = [_next_month(s) for s in starts[:-1]] + [now]
    plans = {int(r.id): (str(r.currency), str(r.interval), int(r.price_cents))
             for r in await session.execute(text("SELECT id, currency, interval, price_cents FROM plans"))}
    exact: dict[str, list[Fraction]] = {}
    rows = await session.execute(_MRR_BUCKETS, {"points": points, "count": count, "first": points[0],
                                                "last": points[-1]})
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
        for k in range(max(int(row["b_start"]), 0), min(int(row["b_end"]), count)):
            series[k] += value
    values = {c: [round_half_up(v) for v in exact[c]] for c in sorted(exact)}
    return MonthlySeries(months=starts, values=values, formula=MRR_HISTORY_FORMULA)


_REVENUE_BY_MONTH = text("""
    SELECT month, currency, sum(cents)::bigint AS cents FROM (
        SELECT date_trunc('month', paid_at) AS month, currency, sum(amount_cents) AS cents FROM invoices
        WHERE paid_at IS NOT NULL AND status IN ('paid', 'partially_refunded', 'refunded')
          AND paid_at >= :first AND paid_at <= :now
        GROUP BY 1, 2
        UNION ALL
        SELECT date_trunc('month', succeeded_at), currency, -sum(amount_cents) FROM refunds
        WHERE status = 'succeeded' AND succeeded_at >= :first AND succeeded_at <= :now
        GROUP BY 1, 2
    ) t GROUP BY 1, 2
""")


async def revenue_by_month(session: AsyncSession, *, now: datetime, count: int = MONTHS) -> MonthlySeries:
    """Revenue of each of the last months (the current one up to `now`), per currency: invoices paid in the month
    minus refunds succeeded in the month."""
    starts = month_starts(now, count)
    index = {s: k for k, s in enumerate(starts)}
    values: dict[str, list[int]] = {}
    rows = await session.execute(_REVENUE_BY_MONTH, {"first": starts[0], "now": now})
    for row in rows.mappings():
        month = row["month"].astimezone(UTC)
        series = values.setdefault(str(row["currency"]), [0] * count)
        series[index[month]] += int(row["cents"])
    return MonthlySeries(months=starts, values={c: values[c] for c in sorted(values)},
                         formula=REVENUE_HISTORY_FORMULA)

