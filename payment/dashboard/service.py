"""The dashboard: every card computed on its own connection under its own statement timeout, all at once.

A card that times out or fails comes back without a value (the page shows `--`) while the others still show; the
dashboard as a whole never fails. The admin page and the admin JSON endpoint both call `compute_dashboard`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard import history, metrics
from payment.db import Database
from payment.models import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Card = Callable[[AsyncSession], Awaitable[Any]]

TIMEOUT_SECONDS = 10.0
QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by statement_timeout
# the cards in the order the page shows them
CARDS: dict[str, Callable[..., Awaitable[Any]]] = {
    "mrr": metrics.mrr,
    "active": metrics.active_subscriptions,
    "churn": metrics.churn_rate,
    "revenue": metrics.revenue,
    "mrr_history": history.mrr_by_month,
    "revenue_history": history.revenue_by_month,
}


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A card's value, or why there is none ("timeout" or "failed"), and how long it took."""

    name: str
    value: T | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    mrr: Outcome[metrics.MrrResult]
    active: Outcome[metrics.ActiveResult]
    churn: Outcome[metrics.ChurnResult]
    revenue: Outcome[metrics.RevenueResult]
    mrr_history: Outcome[history.MonthlySeries]
    revenue_history: Outcome[history.MonthlySeries]


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == QUERY_CANCELED or getattr(seen, "pgcode", None) == QUERY_CANCELED:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def run_card(db: Database, name: str, card: Card, *, timeout_seconds: float) -> Outcome[Any]:
    """One card in its own read-only transaction with `statement_timeout` set; errors become an empty outcome.

    Only the card's name and the error's class reach the log: never SQL text or parameters.
    """
    started = time.perf_counter()
    try:

        async def compute() -> Any:
            async with db.sessionmaker() as session, session.begin():
                # one round trip: the timeout bounds every statement of this card; months and windows are in UTC
                await session.execute(
                    text("SELECT set_config('statement_timeout', :ms, true), set_config('TimeZone', 'UTC', true)"),
                    {"ms": str(max(1, round(timeout_seconds * 1000)))},
                )
                return await card(session)

        # the server enforces the timeout; this bound only covers a server that does not answer at all
        value = await asyncio.wait_for(compute(), timeout_seconds + 2)
    except Exception as exc:
        error = "timeout" if _is_timeout(exc) else "failed"
        log.warning(
            "dashboard card %s %s (%s)", name, "timed out" if error == "timeout" else "failed", type(exc).__name__
        )
        return Outcome(name, None, error, time.perf_counter() - started)
    return Outcome(name, value, None, time.perf_counter() - started)


async def compute_dashboard(
    db: Database,
    *,
    now: datetime | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
    timeouts: Mapping[str, float] | None = None,
) -> Dashboard:
    """Every card of the dashboard at `now`, concurrently, each bounded by its timeout (10 s unless told)."""
    at = now or utcnow()
    limits = timeouts or {}

    def bind(card: Callable[..., Awaitable[Any]]) -> Card:
        return lambda session: card(session, now=at)

    outcomes = await asyncio.gather(
        *(
            run_card(db, name, bind(card), timeout_seconds=limits.get(name, timeout_seconds))
            for name, card in CARDS.items()
        )
    )
    return Dashboard(at, *outcomes)


def _series(series: history.MonthlySeries) -> dict[str, Any]:
    return {"months": [m.strftime("%Y-%m") for m in series.months], "values": series.values, "formula": series.formula}


def _card(outcome: Outcome[Any], body: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    base: dict[str, Any] = {"ok": outcome.ok, "error": outcome.error, "seconds": round(outcome.seconds, 4)}
    if outcome.value is not None:
        base.update(body(outcome.value))
    return base


def as_json(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON: amounts in minor units per currency, each card with its formula."""

    def mrr(v: metrics.MrrResult) -> dict[str, Any]:
        return {"amounts": v.amounts, "subscriptions": v.subscriptions, "formula": v.formula}

    def active(v: metrics.ActiveResult) -> dict[str, Any]:
        return {"total": v.total, "by_source": v.by_source, "formula": v.formula}

    def churn(v: metrics.ChurnResult) -> dict[str, Any]:
        rate = v.rate_percent
        return {
            "rate_percent": None if rate is None else str(rate),
            "churned": v.churned,
            "active_at_start": v.active_at_start,
            "since": v.since.isoformat(),
            "formula": v.formula,
        }

    def revenue(v: metrics.RevenueResult) -> dict[str, Any]:
        return {
            "amounts": v.amounts,
            "paid": v.paid,
            "refunded": v.refunded,
            "since": v.since.isoformat(),
            "formula": v.formula,
        }

    return {
        "now": dashboard.now.isoformat(),
        "amounts_unit": "minor units (cents/satang) per ISO currency",
        "mrr": _card(dashboard.mrr, mrr),
        "active_subscriptions": _card(dashboard.active, active),
        "churn": _card(dashboard.churn, churn),
        "revenue": _card(dashboard.revenue, revenue),
        "mrr_by_month": _card(dashboard.mrr_history, _series),
        "revenue_by_month": _card(dashboard.revenue_history, _series),
    }
