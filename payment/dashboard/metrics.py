"""The four dashboard cards: what each counts, stated once here and shown under each number.

Every card is one read-only async function `card(session, *, now)` returning a typed result whose money is integer
minor units per currency (never added across currencies) and whose `formula` is the line the admin sees.

The cards read the running totals that triggers keep exact (payment/models/dashboard.py, migration 0002e), plus the
rows of the current UTC day where a window ends at `now`. Days and months are UTC.

Definitions:
- active: status 'active' (not trialing, not past_due).
- MRR per currency: active Stripe subscriptions at their plan's price (yearly ÷ 12) less the recurring discount
  Stripe applies to their next invoice (a coupon's percentage of the price, or its amount off capped at the price,
  until the discount's end; a `once` coupon is gone from the subscription after its first invoice, so it never
  lowers MRR); active manual subscriptions at
  paid_amount_cents (in paid_currency) over their current period's length in months (whole calendar months, plus
  the rest as a fraction of 30 days); granted subscriptions and free plans count 0. Summed exactly per currency,
  then rounded once, half up, to a whole minor unit.
- churn: the last 30 days start at 00:00 UTC thirty days before today (t0). Active at t0 = created before t0, past
  any trial before t0, not ended before t0, and not a never-started status (incomplete, incomplete_expired).
  Rate = those of them that ended between t0 and now ÷ all of them.
- revenue: from t0 to now, per currency: invoices paid (status paid, partially_refunded or refunded) by paid_at,
  minus refunds succeeded by succeeded_at (a refund counts when it succeeds, whenever its invoice was paid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

WINDOW_DAYS = 30
# a manual subscription's period is measured in microseconds with whole calendar months counted as 30 days
MONTH_US = 30 * 86_400 * 1_000_000

MRR_FORMULA = (
    "Σ active subscriptions' monthly value after discount, per currency: Stripe plan price (yearly ÷ 12) − its "
    "current recurring discount (percent off × price, or the amount off capped at the price; yearly ÷ 12; "
    "discounts past their end excluded); manual = amount paid ÷ period length in months; granted and free = 0; "
    "trialing and past-due excluded; summed exactly, rounded half up"
)
ACTIVE_FORMULA = "Subscriptions with status active now, by source (trialing and past-due not counted)"
CHURN_FORMULA = (
    "Of the subscriptions active at 00:00 UTC 30 days ago (started, past trial, not ended), the share that ended since"
)
REVENUE_FORMULA = (
    "Since 00:00 UTC 30 days ago, per currency: invoices paid (incl. later refunded) by payment date − "
    "refunds succeeded by refund date"
)


def round_half_up(value: Fraction) -> int:
    """An exact amount rounded to a whole minor unit, halves away from zero (integer arithmetic, no floats)."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


def day_start(at: datetime) -> datetime:
    """00:00 UTC of the day holding `at`."""
    return datetime.combine(at.astimezone(UTC).date(), time(), UTC)


def window_start(now: datetime) -> datetime:
    """Where "the last 30 days" start: 00:00 UTC thirty days before today."""
    return day_start(now) - timedelta(days=WINDOW_DAYS)


def manual_monthly(paid_cents: int, period_us: int) -> Fraction:
    """What a manual payment is worth a month: the amount over the period's length in months, exactly."""
    return Fraction(paid_cents * MONTH_US, period_us)


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
    amounts: dict[str, int]  # after discounts
    subscriptions: dict[str, int]
    parts: list[MrrPart] = field(default_factory=list)
    formula: str = MRR_FORMULA
    discounts: dict[str, int] = field(default_factory=dict)  # the monthly discount taken off, per currency


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


_STRIPE_MRR = text("""
    SELECT p.currency, p.interval, sum(t.subscriptions)::bigint AS subs,
           sum(t.subscriptions * p.price_cents)::bigint AS cents
    FROM dashboard_subscription_totals t JOIN plans p ON p.id = t.plan_id
    WHERE t.status = 'active' AND t.source = 'stripe' AND p.price_cents > 0
    GROUP BY p.currency, p.interval HAVING sum(t.subscriptions) <> 0
""")
_MANUAL_MRR = text("""
    SELECT paid_currency AS currency, period_us, sum(subscriptions)::bigint AS subs, sum(paid_cents)::bigint AS paid
    FROM dashboard_subscription_totals
    WHERE status = 'active' AND source = 'manual' AND paid_currency <> '' AND period_us > 0
    GROUP BY 1, 2 HAVING sum(subscriptions) <> 0
""")


_DISCOUNTS = text("""
    SELECT p.currency, p.interval, p.price_cents, s.discount_percent_off, s.discount_amount_off_cents
    FROM subscriptions s JOIN plans p ON p.id = s.plan_id
    WHERE s.status = 'active' AND s.source = 'stripe' AND p.price_cents > 0
      AND (s.discount_percent_off IS NOT NULL OR s.discount_amount_off_cents IS NOT NULL)
      AND (s.discount_ends_at IS NULL OR s.discount_ends_at > :now)
""")


def monthly_discount(price_cents: int, interval: str, percent_off: Decimal | None, amount_off: int | None) -> Fraction:
    """What a subscription's recurring discount takes off its monthly value, exactly."""
    months = 12 if interval == "year" else 1
    if percent_off is not None:
        return Fraction(price_cents) * Fraction(percent_off) / 100 / months
    return Fraction(min(amount_off or 0, price_cents), months)


async def _discounts(session: AsyncSession, now: datetime) -> dict[str, Fraction]:
    found: dict[str, Fraction] = {}
    for row in (await session.execute(_DISCOUNTS, {"now": now})).mappings():
        off = monthly_discount(
            int(row["price_cents"]), row["interval"], row["discount_percent_off"], row["discount_amount_off_cents"]
        )
        found[row["currency"]] = found.get(row["currency"], Fraction(0)) + off
    return found


async def mrr(session: AsyncSession, *, now: datetime) -> MrrResult:
    """MRR per currency: active Stripe subscriptions at their plan's monthly price, manual ones at what was paid
    spread over their period, granted and free ones at zero; trialing and past-due excluded."""
    parts: list[MrrPart] = []
    for row in (await session.execute(_STRIPE_MRR)).mappings():
        months = 12 if row["interval"] == "year" else 1
        parts.append(
            MrrPart(
                currency=row["currency"],
                source="stripe",
                interval=row["interval"],
                subscriptions=int(row["subs"]),
                monthly_cents=Fraction(int(row["cents"]), months),
            )
        )
    manual: dict[str, tuple[int, Fraction]] = {}
    for row in (await session.execute(_MANUAL_MRR)).mappings():
        subs, value = manual.get(row["currency"], (0, Fraction(0)))
        manual[row["currency"]] = (
            subs + int(row["subs"]),
            value + manual_monthly(int(row["paid"]), int(row["period_us"])),
        )
    for currency, (subs, value) in manual.items():
        parts.append(
            MrrPart(currency=currency, source="manual", interval="period", subscriptions=subs, monthly_cents=value)
        )
    totals: dict[str, Fraction] = {}
    counts: dict[str, int] = {}
    for part in parts:
        totals[part.currency] = totals.get(part.currency, Fraction(0)) + part.monthly_cents
        counts[part.currency] = counts.get(part.currency, 0) + part.subscriptions
    discounts = await _discounts(session, now)
    amounts = {c: round_half_up(totals[c] - discounts.get(c, Fraction(0))) for c in sorted(totals)}
    return MrrResult(
        amounts=amounts,
        subscriptions={c: counts[c] for c in sorted(counts)},
        parts=sorted(parts, key=lambda p: (p.currency, p.source, p.interval)),
        discounts={c: round_half_up(discounts[c]) for c in sorted(discounts) if c in totals},
    )


async def active_subscriptions(session: AsyncSession, *, now: datetime) -> ActiveResult:
    """Active subscriptions are those whose status is 'active' now, counted per source."""
    rows = await session.execute(
        text(
            "SELECT source, sum(subscriptions)::bigint FROM dashboard_subscription_totals WHERE status = 'active' "
            "GROUP BY source"
        )
    )
    counts = {str(source): int(n) for source, n in rows}
    return ActiveResult(by_source={s: counts.get(s, 0) for s in ("stripe", "manual", "grant")})


# active at t0 = the running sum of starts (+1) and ends (-1) on the days before t0
_CHURN_BASE = text("SELECT coalesce(sum(delta), 0)::bigint FROM dashboard_subscription_days WHERE day < :day")
_CHURNED = text("""
    SELECT count(*) FROM subscriptions
    WHERE ended_at >= :since AND ended_at <= :now AND ended_at IS NOT NULL
      AND greatest(created_at, coalesce(trial_end, created_at)) < :since
      AND status NOT IN ('incomplete', 'incomplete_expired')
""")


async def churn_rate(session: AsyncSession, *, now: datetime) -> ChurnResult:
    """Churn is the share of the subscriptions active at the start of the last 30 days that have ended since."""
    since = window_start(now)
    base = (await session.execute(_CHURN_BASE, {"day": since.date()})).scalar_one()
    churned = (await session.execute(_CHURNED, {"since": since, "now": now})).scalar_one()
    return ChurnResult(churned=int(churned), active_at_start=int(base), since=since)


# whole days from the running totals, today's rows (up to now) from the tables themselves
_REVENUE_DAYS = text("""
    SELECT currency, sum(paid_cents)::bigint, sum(refunded_cents)::bigint FROM dashboard_revenue_days
    WHERE day >= :first AND day < :today GROUP BY currency
""")
_PAID_TODAY = text("""
    SELECT currency, sum(amount_cents)::bigint FROM invoices
    WHERE paid_at IS NOT NULL AND paid_at >= :today_start AND paid_at <= :now
      AND status IN ('paid', 'partially_refunded', 'refunded')
    GROUP BY currency
""")
_REFUNDED_TODAY = text("""
    SELECT currency, sum(amount_cents)::bigint FROM refunds
    WHERE status = 'succeeded' AND succeeded_at >= :today_start AND succeeded_at <= :now
    GROUP BY currency
""")


async def today_so_far(session: AsyncSession, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Paid and refunded amounts per currency from 00:00 UTC today up to `now`, from the tables themselves."""
    params = {"today_start": day_start(now), "now": now}
    paid = {str(c): int(v) for c, v in await session.execute(_PAID_TODAY, params)}
    refunded = {str(c): int(v) for c, v in await session.execute(_REFUNDED_TODAY, params)}
    return paid, refunded


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for currency, cents in more.items():
        into[currency] = into.get(currency, 0) + cents


async def revenue(session: AsyncSession, *, now: datetime) -> RevenueResult:
    """Revenue over the last 30 days is what invoices paid in that window brought in, per currency, less the
    refunds that succeeded in that window (refunds count by refund date, whatever month their invoice was paid)."""
    since = window_start(now)
    paid: dict[str, int] = {}
    refunded: dict[str, int] = {}
    for currency, paid_cents, refunded_cents in await session.execute(
        _REVENUE_DAYS, {"first": since.date(), "today": day_start(now).date()}
    ):
        _add(paid, {str(currency): int(paid_cents)})
        _add(refunded, {str(currency): int(refunded_cents)})
    today_paid, today_refunded = await today_so_far(session, now)
    _add(paid, today_paid)
    _add(refunded, today_refunded)
    return RevenueResult(
        paid={c: v for c, v in sorted(paid.items()) if v},
        refunded={c: v for c, v in sorted(refunded.items()) if v},
        since=since,
    )
