"""Every dashboard figure against the hand-computed values of dataset.py, through the service the page uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard import history, metrics
from payment.dashboard.service import as_json, compute_dashboard
from payment.models import Invoice, Refund, Subscription
from payment.runtime import Services
from tests.integration.dashboard import dataset
from tests.integration.dashboard.dataset import NOW


async def test_mrr_per_currency_counts_active_paid_subscriptions_summed_then_rounded_half_up(
    services: Services, known_data: dict[str, Any]
) -> None:
    board = await compute_dashboard(services.db, now=NOW)

    assert board.mrr.ok and board.mrr.value is not None
    assert board.mrr.value.amounts == dataset.MRR
    assert board.mrr.value.subscriptions == dataset.MRR_SUBSCRIPTIONS
    parts = {(p.currency, p.source, p.interval): (p.subscriptions, p.monthly_cents) for p in board.mrr.value.parts}
    assert parts == {
        ("thb", "manual", "period"): (1, Fraction(29900)),
        ("thb", "stripe", "month"): (2, Fraction(59800)),
        ("thb", "stripe", "year"): (1, Fraction(299010, 12)),
        ("usd", "manual", "period"): (1, Fraction(10000, 3)),
        ("usd", "stripe", "month"): (2, Fraction(1998)),
        ("usd", "stripe", "year"): (2, Fraction(19812, 12)),
    }
    assert "yearly ÷ 12" in board.mrr.value.formula and "past-due excluded" in board.mrr.value.formula


async def test_active_subscriptions_are_status_active_by_source(services: Services, known_data: dict[str, Any]) -> None:
    board = await compute_dashboard(services.db, now=NOW)

    assert board.active.value is not None
    assert board.active.value.by_source == dataset.ACTIVE
    assert board.active.value.total == 11


async def test_churn_is_ended_since_over_active_thirty_days_ago(services: Services, known_data: dict[str, Any]) -> None:
    board = await compute_dashboard(services.db, now=NOW)

    churn = board.churn.value
    assert churn is not None
    assert (churn.churned, churn.active_at_start) == (dataset.CHURNED, dataset.CHURN_BASE)
    assert churn.rate_percent == Decimal(dataset.CHURN_PERCENT)


async def test_revenue_is_paid_invoices_minus_refunds_by_refund_date(
    services: Services, known_data: dict[str, Any]
) -> None:
    board = await compute_dashboard(services.db, now=NOW)

    revenue = board.revenue.value
    assert revenue is not None
    assert revenue.amounts == dataset.REVENUE
    assert (revenue.paid, revenue.refunded) == (dataset.REVENUE_PAID, dataset.REVENUE_REFUNDED)


async def test_monthly_series_for_the_charts(services: Services, known_data: dict[str, Any]) -> None:
    board = await compute_dashboard(services.db, now=NOW)

    mrr, revenue = board.mrr_history.value, board.revenue_history.value
    assert mrr is not None and revenue is not None
    assert [m.strftime("%Y-%m") for m in mrr.months] == dataset.MONTHS
    assert mrr.values == dataset.MRR_BY_MONTH
    assert revenue.values == dataset.REVENUE_BY_MONTH
    # the current month's point is the MRR card itself
    assert {c: v[-1] for c, v in mrr.values.items()} == dataset.MRR


async def test_json_carries_every_figure_and_formula(services: Services, known_data: dict[str, Any]) -> None:
    body = as_json(await compute_dashboard(services.db, now=NOW))

    assert body["mrr"]["amounts"] == dataset.MRR
    assert body["active_subscriptions"] == {**body["active_subscriptions"], "total": 11, "by_source": dataset.ACTIVE}
    assert (body["churn"]["rate_percent"], body["churn"]["churned"], body["churn"]["active_at_start"]) == (
        dataset.CHURN_PERCENT,
        dataset.CHURNED,
        dataset.CHURN_BASE,
    )
    assert body["revenue"]["amounts"] == dataset.REVENUE
    assert body["mrr_by_month"]["months"] == dataset.MONTHS
    assert body["revenue_by_month"]["values"] == dataset.REVENUE_BY_MONTH
    for key in ("mrr", "active_subscriptions", "churn", "revenue", "mrr_by_month", "revenue_by_month"):
        assert body[key]["ok"] is True and body[key]["formula"]


async def test_a_window_with_nothing_in_it_gives_no_revenue_and_no_churn_rate(
    services: Services, known_data: dict[str, Any]
) -> None:
    # every row of the data set lies in 2025-2026: from the year 2000 nothing was paid, active or refunded
    board = await compute_dashboard(services.db, now=datetime(2000, 6, 15, tzinfo=UTC))

    assert board.revenue.value is not None and board.revenue.value.amounts == {}
    assert board.churn.value is not None and board.churn.value.rate_percent is None
    assert board.revenue_history.value is not None and board.revenue_history.value.values == {}


async def test_running_totals_follow_updates_and_deletes_and_match_a_rebuild(
    db: AsyncSession, known_data: dict[str, Any]
) -> None:
    ids = {name: sub.id for name, sub in known_data["subs"].items()}
    s1, s2, s3, s8 = [await db.get(Subscription, ids[n]) for n in ("S1", "S2", "S3", "S8")]
    assert s1 and s2 and s3 and s8
    s1.status, s1.ended_at = "canceled", dataset.at(2026, 11, 19)  # churns: was active at t0
    s2.plan_id = s3.plan_id  # moves to the yearly THB plan: 24917.5 a month
    assert s8.current_period_end is not None
    s8.current_period_end += timedelta(days=15)  # 5000 USD now over 1 month 30 days = 2 months
    await db.flush()
    await db.execute(delete(Refund).where(Refund.amount_cents == 10000))  # the THB refund of Oct 28
    await db.execute(
        update(Invoice)
        .where(Invoice.amount_cents == 29900, Invoice.paid_at == dataset.at(2026, 11, 1))
        .values(status="void")
    )

    async def figures() -> tuple[object, ...]:
        mrr = await metrics.mrr(db, now=NOW)
        active = await metrics.active_subscriptions(db, now=NOW)
        churn = await metrics.churn_rate(db, now=NOW)
        revenue = await metrics.revenue(db, now=NOW)
        history_ = await history.mrr_by_month(db, now=NOW)
        return mrr.amounts, active.by_source, churn.churned, churn.active_at_start, revenue.amounts, history_.values

    after = await figures()
    assert after[:5] == (
        {"thb": 79735, "usd": 6149},
        {"stripe": 7, "manual": 2, "grant": 1},
        3,
        11,
        {"thb": 299010, "usd": 5000},
    )
    await db.execute(text("SELECT dashboard_rebuild()"))
    assert await figures() == after
