"""The four dashboard cards: what each counts, stated once here and shown under each number.

Every card is one read-only async function `card(session, *, now)` returning a typed result whose money is integer
minor units per currency (never added across currencies) and whose `formula` is the line the admin sees. Time is
UTC: callers run the cards with the session's TimeZone set to UTC (see service.py).

Rounding: each currency's MRR is summed exactly (yearly prices and manual payments as exact fractions) and rounded
once, half up, to a whole minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHURN_WINDOW = timedelta(days=30)
REVENUE_WINDOW = timedelta(days=30)
COUNTED_INVOICE_STATUSES = ("paid", "partially_refunded", "refunded")
# statuses of a subscription that never started: it was never active, so it cannot churn
NEVER_STARTED = ("incomplete", "incomplete_expired")

MRR_FORMULA = ("Σ active subscriptions' monthly value, per currency: Stripe plan price (yearly ÷ 12); manual = amount "
               "paid ÷ period length in months; granted and free = 0; trialing and past-due excluded; summed exactly, "
               "rounded half up")
ACTIVE_FORMULA = "Subscriptions with status active now, by source (trialing and past-due not counted)"
CHURN_FORMULA = ("Subscriptions ended in the last 30 days ÷ subscriptions active 30 days ago (created by then, not "
                 "ended, not trialing, ever started); the numerator counts only those in the denominator")
REVENUE_FORMULA = ("Last 30 days, per currency: invoices paid (incl. later refunded) by payment date − refunds "
                   "succeeded by refund date")


def round_half_up(value: Fraction) -> int:
    """An exact amount rounded to a whole minor unit, halves away from zero."""
    return int((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1), ROUND_HALF_UP)) \
        if value.denominator != 1 else int(value)


@dataclass(frozen=True)
class MrrPart:
    """One line of MRR: a currency, a source and a billing interval, with its exact monthly value."""

    currency: str
    source: str
    interval: str
    subscriptions: int
    monthly_cents: Fraction


@dataclass(frozen=True)
class MrrResult:
    amounts: dict[str, int]
    subscriptions: dict[str, int]
    parts: list[MrrPart] = field(default_factory=list)
    formula: str = MRR_FORMULA


@dataclass(frozen=True)
class ActiveResult:
    by_source: dict[str, int]
    formula: str = ACTIVE_FORMULA

    @property
    def total(self) -> int:
        return sum(self.by_source.values())


@dataclass(frozen=True)
class ChurnResult:
    churned: int
    active_at_start: int
    since: datetime
    formula: str = CHURN_FORMULA

    @property
    def rate_percent(self) -> Decimal | None:
        """The rate in percent, two decimals, half up; None when nothing was active at the start."""
        if self.active_at_start == 0:
            return None
        exact = Decimal(self.churned * 100) / Decimal(self.active_at_start)
        return exact.quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class RevenueResult:
    paid: dict[str, int]
    refunded: dict[str, int]
    since: datetime
    formula: str = REVENUE_FORMULA

    @property
    def amounts(self) -> dict[str, int]:
        currencies = sorted(set(self.paid) | set(self.refunded))
        return {c: self.paid.get(c, 0) - self.refunded.get(c, 0) for c in currencies}


# Stripe subscriptions: count per plan first (an index-only scan), then price the few plans.
_STRIPE_MRR = text("""
    SELECT p.currency, p.interval, sum(n.subs)::bigint AS subs, sum(n.subs * p.price_cents)::bigint AS cents
    FROM (SELECT plan_id, count(*) AS subs FROM subscriptions
          WHERE status = 'active' AND source = 'stripe' GROUP BY plan_id) n
    JOIN plans p ON p.id = n.plan_id
    WHERE p.price_cents > 0
    GROUP BY p.currency, p.interval
""")

# Manual subscriptions: what was paid over the current period, in calendar months (whole months, plus the leftover
# time as a fraction of 30 days). The period is measured in microseconds with whole months counted as 30 days
# (MONTH_US each), so amount × MONTH_US / period is exact; rows are grouped by period so the division happens once
# per distinct period, in Python, as a fraction.
MONTH_US = 30 * 86_400 * 1_000_000
_WHOLE_MONTHS = """(extract(year FROM age(s.current_period_end, s.current_period_start)) * 12
                    + extract(month FROM age(s.current_period_end, s.current_period_start)))"""
MANUAL_PERIOD_US_SQL = f"""
    ({_WHOLE_MONTHS} * {MONTH_US}
     + extract(epoch FROM s.current_period_end
               - (s.current_period_start + make_interval(months => ({_WHOLE_MONTHS})::int))) * 1000000)::bigint
"""
_MANUAL_MRR = text(f"""
    SELECT s.paid_currency AS currency, {MANUAL_PERIOD_US_SQL} AS period_us, count(*) AS subs,
           sum(s.paid_amount_cents)::bigint AS paid
    FROM subscriptions s
    WHERE s.status = 'active' AND s.source = 'manual' AND s.paid_amount_cents > 0 AND s.paid_currency IS NOT NULL
      AND s.current_period_end > s.current_period_start
    GROUP BY 1, 2
""")  # noqa: S608 - constant SQL fragments, no input


def manual_monthly(paid_cents: int, period_us: int) -> Fraction:
    """What a manual payment is worth a month: the amount over the period's length in months, exactly."""
    return Fraction(paid_cents * MONTH_US, period_us)


async def mrr(session: AsyncSession, *, now: datetime) -> MrrResult:
    """MRR per currency: active Stripe subscriptions at their plan's monthly price, manual ones at what was paid
    spread over their period, granted and free ones at zero; trialing and past-due excluded."""
    parts: list[MrrPart] = []
    for row in (await session.execute(_STRIPE_MRR)).mappings():
        months = 12 if row["interval"] == "year" else 1
        parts.append(MrrPart(currency=row["currency"], source="stripe", interval=row["interval"],
                             subscriptions=int(row["subs"]), monthly_cents=Fraction(int(row["cents"]), months)))
    manual: dict[str, tuple[int, Fraction]] = {}
    for row in (await session.execute(_MANUAL_MRR)).mappings():
        subs, value = manual.get(row["currency"], (0, Fraction(0)))
        manual[row["currency"]] = (subs + int(row["subs"]), value + manual_monthly(int(row["paid"]),
                                                                                     int(row["period_us"])))
    for currency, (subs, value) in manual.items():
        parts.append(MrrPart(currency=currency, source="manual", interval="period", subscriptions=subs,
                             monthly_cents=value))
    totals: dict[str, Fraction] = {}
    counts: dict[str, int] = {}
    for part in parts:
        totals[part.currency] = totals.get(part.currency, Fraction(0)) + part.monthly_cents
        counts[part.currency] = counts.get(part.currency, 0) + part.subscriptions
    amounts = {c: round_half_up(totals[c]) for c in sorted(totals)}
    return MrrResult(amounts=amounts, subscriptions={c: counts[c] for c in sorted(counts)},
                     parts=sorted(parts, key=lambda p: (p.currency, p.source, p.interval)))


async def active_subscriptions(session: AsyncSession, *, now: datetime) -> ActiveResult:
    """Active subscriptions are those whose status is 'active' now, counted per source."""
    rows = await session.execute(text(
        "SELECT source, count(*) FROM subscriptions WHERE status = 'active' GROUP BY source"))
    counts = {str(source): int(n) for source, n in rows}
    return ActiveResult(by_source={s: counts.get(s, 0) for s in ("stripe", "manual", "grant")})


# "Active at t" from the columns we keep: created by t, not ended by t, past any trial at t, and ever started.
_CHURN = text("""
    SELECT count(*) FILTER (WHERE ended_at <= :now) AS churned, count(*) AS base
    FROM subscriptions
    WHERE created_at <= :since AND (ended_at IS NULL OR ended_at > :since)
      AND status NOT IN ('incomplete', 'incomplete_expired') AND (trial_end IS NULL OR trial_end <= :since)
""")


async def churn_rate(session: AsyncSession, *, now: datetime) -> ChurnResult:
    """Churn is the share of the subscriptions active 30 days ago that have ended since."""
    since = now - CHURN_WINDOW
    row = (await session.execute(_CHURN, {"now": now, "since": since})).one()
    return ChurnResult(churned=int(row.churned), active_at_start=int(row.base), since=since)


_PAID = text("""
    SELECT currency, sum(amount_cents)::bigint FROM invoices
    WHERE paid_at IS NOT NULL AND status IN ('paid', 'partially_refunded', 'refunded')
      AND paid_at > :since AND paid_at <= :now
    GROUP BY currency
""")
_REFUNDED = text("""
    SELECT currency, sum(amount_cents)::bigint FROM refunds
    WHERE status = 'succeeded' AND succeeded_at > :since AND succeeded_at <= :now
    GROUP BY currency
""")


async def revenue(session: AsyncSession, *, now: datetime) -> RevenueResult:
    """Revenue over the last 30 days is what invoices paid in that window brought in, per currency, less the
    refunds that succeeded in that window (refunds count by refund date, whatever month their invoice was paid)."""
    since = now - REVENUE_WINDOW
    params = {"now": now, "since": since}
    paid = {str(c): int(v) for c, v in await session.execute(_PAID, params)}
    refunded = {str(c): int(v) for c, v in await session.execute(_REFUNDED, params)}
    return RevenueResult(paid=dict(sorted(paid.items())), refunded=dict(sorted(refunded.items())), since=since)
