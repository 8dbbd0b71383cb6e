"""A known data set for the dashboard, at a fixed instant, with every figure computed by hand below.

NOW = 2026-11-20 12:00 UTC. The 30-day windows start at 2026-10-21 00:00 UTC (t0). Charts: Dec 2025 .. Nov 2026.

Plans: thb-month 29900, thb-year 299010 (24917.5 a month), usd-month 999, usd-year 9906 (825.5 a month), free 0.

 sub  source  plan       status              created           trial_end  ended             note
 S1   stripe  thb-month  active              2026-01-10                                     29900
 S2   stripe  thb-month  active              2026-06-05                                     29900
 S3   stripe  thb-year   active              2026-03-01 00:00                               24917.5
 S4   stripe  usd-month  active              2025-12-15                                     999
 S5   stripe  usd-year   active              2026-11-01 09:00                               825.5
 S6   stripe  usd-year   active              2026-09-10                                     825.5
 S7   manual  thb-month  active, 89700 THB over 2026-11-01 09:00 -> 2027-02-01 09:00 (3 months)   29900
 S8   manual  thb-month  active, 5000 USD over 2026-11-05 -> 2026-12-20 (1 month 15 days = 1.5) 3333.33..
 S9   grant   thb-month  active              2026-05-01                                     0 (granted)
 S10  stripe  free       active              2026-02-01                                     0 (free)
 S11  stripe  thb-month  trialing            2026-11-10        2026-11-24                   excluded
 S12  stripe  usd-month  past_due            2026-04-01                                     excluded
 S13  stripe  thb-month  canceled            2026-02-10                   2026-11-05        churned
 S14  stripe  usd-year   canceled            2026-01-20                   2026-08-31        ended before t0
 S15  manual  thb-month  expired, 60000 THB over 2026-07-01 10:00 -> 2026-10-01 (3 months = 20000), ended 2026-10-01
 S16  stripe  thb-month  canceled            2026-10-25                   2026-11-10        started after t0
 S17  stripe  thb-month  incomplete_expired  2026-09-01                   2026-09-02        never started
 S18  grant   thb-month  canceled            2026-03-01                   2026-11-15        churned
 S19  stripe  usd-month  active              2026-10-01        2026-10-25                   999, trialing at t0
 S20  stripe  thb-month  unpaid              2026-03-01                                     in churn base only

MRR THB = 29900 + 29900 + 24917.5 + 29900 = 114617.5 -> 114618 (half up), 4 subscriptions
MRR USD = 999 + 1651 (19812 / 12, summed before dividing) + 3333.33.. + 999 = 6982.33.. -> 6982, 5 subscriptions
Active: stripe 8 (S1-S6, S10, S19), manual 2 (S7, S8), grant 1 (S9); total 11
Churn: base = S1 S2 S3 S4 S6 S9 S10 S12 S13 S18 S20 = 11; churned = S13 S18 = 2; 2 / 11 = 18.18 %
Revenue THB = (29900 + 299010) - 10000 = 318910; USD = (999 + 5000) - 999 = 5000
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import Refund
from tests.support import factories

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

MRR = {"thb": 114618, "usd": 6982}
MRR_SUBSCRIPTIONS = {"thb": 4, "usd": 5}
ACTIVE = {"stripe": 8, "manual": 2, "grant": 1}
CHURNED, CHURN_BASE, CHURN_PERCENT = 2, 11, "18.18"
REVENUE = {"thb": 318910, "usd": 5000}
REVENUE_PAID = {"thb": 328910, "usd": 5999}
REVENUE_REFUNDED = {"thb": 10000, "usd": 999}

MONTHS = [
    "2025-12",
    "2026-01",
    "2026-02",
    "2026-03",
    "2026-04",
    "2026-05",
    "2026-06",
    "2026-07",
    "2026-08",
    "2026-09",
    "2026-10",
    "2026-11",
]
# MRR at each month end (the instant the next month starts), November at NOW
MRR_BY_MONTH = {
    "thb": [0, 29900, 84718, 84718, 84718, 84718, 114618, 134618, 134618, 114618, 144518, 114618],
    "usd": [999, 1825, 1825, 1825, 1825, 1825, 1825, 1825, 999, 1825, 2824, 6982],
}
REVENUE_BY_MONTH = {
    "thb": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 313910, 29900],
    "usd": [999, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5000],
}


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


async def build(session: AsyncSession) -> dict[str, Any]:
    """Add the data set described above to the session (the caller commits or rolls back)."""
    thb_m = await factories.create_plan(session, price_cents=29900, currency="thb", interval="month")
    thb_y = await factories.create_plan(session, price_cents=299010, currency="thb", interval="year")
    usd_m = await factories.create_plan(session, price_cents=999, currency="usd", interval="month")
    usd_y = await factories.create_plan(session, price_cents=9906, currency="usd", interval="year")
    free = await factories.create_plan(session, price_cents=0, currency="thb", interval="month")
    customer = await factories.create_customer(session)

    async def sub(
        plan: Any,
        created: datetime,
        *,
        status: str = "active",
        source: str = "stripe",
        end: datetime | None = None,
        **extra: Any,
    ) -> Any:
        end = end or created + timedelta(days=30)
        return await factories.create_subscription(
            session,
            customer,
            plan,
            status=status,
            source=source,
            start=created,
            days=(end - created).days,
            created_at=created,
            **extra,
        )

    subs = {
        "S1": await sub(thb_m, at(2026, 1, 10)),
        "S2": await sub(thb_m, at(2026, 6, 5)),
        "S3": await sub(thb_y, datetime(2026, 3, 1, tzinfo=UTC)),
        "S4": await sub(usd_m, at(2025, 12, 15)),
        "S5": await sub(usd_y, at(2026, 11, 1, 9)),
        "S6": await sub(usd_y, at(2026, 9, 10)),
        "S7": await sub(
            thb_m,
            at(2026, 11, 1, 9),
            source="manual",
            end=at(2027, 2, 1, 9),
            paid_amount_cents=89700,
            paid_currency="thb",
        ),
        "S8": await sub(
            thb_m, at(2026, 11, 5), source="manual", end=at(2026, 12, 20), paid_amount_cents=5000, paid_currency="usd"
        ),
        "S9": await sub(thb_m, at(2026, 5, 1), source="grant"),
        "S10": await sub(free, at(2026, 2, 1)),
        "S11": await sub(thb_m, at(2026, 11, 10), status="trialing", trial_end=at(2026, 11, 24)),
        "S12": await sub(usd_m, at(2026, 4, 1), status="past_due"),
        "S13": await sub(thb_m, at(2026, 2, 10), status="canceled", ended_at=at(2026, 11, 5)),
        "S14": await sub(usd_y, at(2026, 1, 20), status="canceled", ended_at=at(2026, 8, 31)),
        "S15": await sub(
            thb_m,
            at(2026, 7, 1, 10),
            status="expired",
            source="manual",
            end=datetime(2026, 10, 1, 10, tzinfo=UTC),
            paid_amount_cents=60000,
            paid_currency="thb",
            ended_at=datetime(2026, 10, 1, tzinfo=UTC),
        ),
        "S16": await sub(thb_m, at(2026, 10, 25), status="canceled", ended_at=at(2026, 11, 10)),
        "S17": await sub(thb_m, at(2026, 9, 1), status="incomplete_expired", ended_at=at(2026, 9, 2)),
        "S18": await sub(thb_m, at(2026, 3, 1), status="canceled", source="grant", ended_at=at(2026, 11, 15)),
        "S19": await sub(usd_m, at(2026, 10, 1), trial_end=at(2026, 10, 25)),
        "S20": await sub(thb_m, at(2026, 3, 1), status="unpaid"),
    }

    async def invoice(amount: int, currency: str, status: str, paid_at: datetime | None, **extra: Any) -> Any:
        row = await factories.create_invoice(
            session, customer, amount_cents=amount, currency=currency, status=status, **extra
        )
        row.paid_at = paid_at
        await session.flush()
        return row

    i1 = await invoice(29900, "thb", "paid", at(2026, 11, 1))
    i2 = await invoice(299010, "thb", "partially_refunded", at(2026, 10, 25), amount_refunded_cents=10000)
    i3 = await invoice(999, "usd", "refunded", at(2026, 11, 19), amount_refunded_cents=999)
    await invoice(5000, "usd", "paid", at(2026, 11, 5), source="manual")
    i5 = await invoice(29900, "thb", "partially_refunded", at(2026, 10, 15), amount_refunded_cents=5000)
    await invoice(29900, "thb", "open", None)
    await invoice(999, "usd", "payment_failed", None)
    await invoice(29900, "thb", "void", at(2026, 11, 10))
    await invoice(29900, "thb", "paid", at(2026, 11, 20, 13))  # after NOW
    await invoice(999, "usd", "paid", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
    await invoice(999, "usd", "paid", at(2025, 11, 30))  # before the charts' first month

    def refund(inv: Any, amount: int, status: str, when: datetime) -> Refund:
        return Refund(
            invoice_id=inv.id,
            amount_cents=amount,
            currency=inv.currency,
            status=status,
            created_by="test",
            succeeded_at=when if status == "succeeded" else None,
            created_at=when,
        )

    session.add_all(
        [
            refund(i2, 10000, "succeeded", at(2026, 10, 28)),
            refund(i3, 999, "succeeded", at(2026, 11, 19)),
            refund(i5, 5000, "succeeded", at(2026, 10, 10)),
            refund(i1, 3000, "pending", at(2026, 11, 18)),
            refund(i3, 500, "failed", at(2026, 11, 18)),
        ]
    )
    await session.flush()
    return subs
