"""Admin: the dashboard is the landing page (/admin/), plus its JSON twin (/admin/dashboard.json).

Both call `payment.dashboard.service.compute_dashboard`; this module only renders. A card without a value shows
`--` (it timed out or failed); the page itself always renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqladmin import Admin, BaseView, expose
from sqladmin.authentication import AuthenticationBackend
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payment.audit.verify import last_verdict
from payment.dashboard import charts, metrics
from payment.dashboard.history import MRR_HISTORY_FORMULA, REVENUE_HISTORY_FORMULA, MonthlySeries
from payment.dashboard.service import TIMEOUT_SECONDS, Dashboard, Outcome, as_json, compute_dashboard
from payment.dunning import admin as dunning_admin
from payment.reconciliation.service import open_count
from payment.runtime import Services, services_of

UNAVAILABLE = "--"
SOURCE_LABELS = {"stripe": "Stripe", "manual": "Manual", "grant": "Granted"}


@dataclass(frozen=True)
class CardView:
    """What one card shows: a title, its lines (one per currency or source) or `--`, and its formula."""

    key: str
    title: str
    lines: list[tuple[str, str]]
    formula: str
    note: str = ""
    help: str = ""  # in plain words; the exact formula sits behind "How is this computed?"

    @property
    def available(self) -> bool:
        return bool(self.lines)


HELP = {
    "mrr": "What the paying subscriptions bring in each month, per currency.",
    "active": "Subscriptions running and paid up right now (not in a trial, not overdue).",
    "churn": "Of the subscriptions running 30 days ago, the share that has ended since.",
    "revenue": "Money received in the last 30 days, minus refunds, per currency.",
    "mrr-chart": "Monthly recurring revenue as it stood at the end of each month.",
    "revenue-chart": "Money received in each month, minus that month's refunds.",
}


def count(n: int, one: str, many: str | None = None) -> str:
    """1 -> "1 USD subscription", 3 -> "3 USD subscriptions"."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


@dataclass
class DashboardState:
    """What the admin sub-app keeps for the page: the services, the sign-in check, each card's statement
    timeout (10 s; tests lower one card's to force its `--`) and the clock."""

    services: Services
    auth: AuthenticationBackend | None
    timeout_seconds: float = TIMEOUT_SECONDS
    timeouts: Mapping[str, float] | None = None
    now: datetime | None = None  # None: the current time (tests pin it to a data set's instant)

    async def compute(self) -> Dashboard:
        return await compute_dashboard(
            self.services.db, now=self.now, timeout_seconds=self.timeout_seconds, timeouts=self.timeouts
        )


def dashboard_state(request: Request) -> DashboardState:
    """The state registered on the admin sub-app that serves this request."""
    state = request.app.state.dashboard
    assert isinstance(state, DashboardState)
    return state


def _money_lines(amounts: Mapping[str, int]) -> list[tuple[str, str]]:
    if not amounts:
        return [("", "0")]
    # the formatted amount names its currency already ("THB 1,146.18")
    return [("", charts.format_money(cents, currency)) for currency, cents in amounts.items()]


def _mrr_note(mrr: metrics.MrrResult) -> str:
    note = ", ".join(count(n, f"{c.upper()} subscription") for c, n in mrr.subscriptions.items())
    off = [charts.format_money(cents, c) for c, cents in mrr.discounts.items() if cents]
    return f"{note}; after {', '.join(off)} of discounts" if off else note


def card_views(dashboard: Dashboard) -> list[CardView]:
    """The four cards in page order, formatted for people."""
    mrr, active, churn, revenue = (
        dashboard.mrr.value,
        dashboard.active.value,
        dashboard.churn.value,
        dashboard.revenue.value,
    )
    cards = [
        CardView(
            "mrr",
            "MRR",
            _money_lines(mrr.amounts) if mrr else [],
            metrics.MRR_FORMULA,
            _mrr_note(mrr) if mrr else "",
            HELP["mrr"],
        ),
        CardView(
            "active",
            "Active subscriptions",
            [("Total", f"{active.total:,}")] + [(SOURCE_LABELS[s], f"{n:,}") for s, n in active.by_source.items()]
            if active
            else [],
            metrics.ACTIVE_FORMULA,
            help=HELP["active"],
        ),
        CardView(
            "churn",
            "Churn rate (30 days)",
            [("", "n/a" if churn.rate_percent is None else f"{churn.rate_percent}%")] if churn else [],
            metrics.CHURN_FORMULA,
            f"{churn.churned:,} ended of {churn.active_at_start:,} active on {churn.since:%Y-%m-%d %H:%M} UTC"
            if churn
            else "",
            HELP["churn"],
        ),
        CardView(
            "revenue",
            "Revenue (30 days)",
            _money_lines(revenue.amounts) if revenue else [],
            metrics.REVENUE_FORMULA,
            "; ".join(
                f"{c.upper()}: {charts.format_money(revenue.paid.get(c, 0), c)} paid − "
                f"{charts.format_money(revenue.refunded.get(c, 0), c)} refunded"
                for c in revenue.amounts
            )
            if revenue
            else "",
            HELP["revenue"],
        ),
    ]
    return cards


@dataclass(frozen=True)
class ChartGroup:
    key: str
    title: str
    formula: str
    svgs: list[str]
    available: bool

    @property
    def help(self) -> str:
        return HELP.get(self.key, "")


def chart_groups(dashboard: Dashboard) -> list[ChartGroup]:
    """The two monthly charts, one SVG per currency, or `--` when their query timed out or failed."""

    def group(key: str, title: str, formula: str, outcome: Outcome[MonthlySeries], kind: str) -> ChartGroup:
        series = outcome.value
        if series is None:
            return ChartGroup(key, title, formula, [], False)
        svgs = [
            chart.svg(f"{key}-{chart.currency}")
            for chart in charts.series_charts(title, series.months, series.values, kind=kind)
        ]
        return ChartGroup(key, title, series.formula, svgs, True)

    return [
        group("mrr-chart", "MRR", MRR_HISTORY_FORMULA, dashboard.mrr_history, "line"),
        group("revenue-chart", "Revenue", REVENUE_HISTORY_FORMULA, dashboard.revenue_history, "bar"),
    ]


class DashboardView(BaseView):
    name = "Dashboard"
    identity = "dashboard"
    icon = "fa-solid fa-chart-line"

    @expose("/dashboard", methods=["GET"], identity="dashboard")
    async def page(self, request: Request) -> Response:
        dashboard = await dashboard_state(request).compute()
        services = services_of(request)
        mail_warning = services.settings.mail_warning
        async with services.db.session() as session:
            audit_chain = await last_verdict(session)
            waiting = await dunning_admin.waiting_emails(session) if mail_warning else 0
            open_drifts = await open_count(session)
        context: dict[str, Any] = {
            "audit_chain": audit_chain,
            "mail_warning": mail_warning,
            "emails_waiting": waiting,
            "open_drifts": open_drifts,
            "title": "Dashboard",
            "subtitle": f"As of {dashboard.now:%Y-%m-%d %H:%M} UTC",
            "cards": card_views(dashboard),
            "chart_groups": chart_groups(dashboard),
            "unavailable": UNAVAILABLE,
        }
        response: Response = await self.templates.TemplateResponse(request, "sqladmin/index.html", context)
        response.headers["Cache-Control"] = "no-store"
        return response


async def dashboard_json(request: Request) -> Response:
    """GET /admin/dashboard.json: the same figures as the page, for a signed-in admin (401 otherwise)."""
    state = dashboard_state(request)
    if state.auth is not None and (await state.auth.authenticate(request)) is not True:
        return JSONResponse(
            {"error": "sign in to the admin first"}, status_code=401, headers={"Cache-Control": "no-store"}
        )
    dashboard = await state.compute()
    return JSONResponse(as_json(dashboard), headers={"Cache-Control": "no-store"})


def register(admin: Admin, services: Services) -> None:
    """Make the dashboard the admin landing page, list it in the menu and add its JSON endpoint."""
    admin.add_base_view(DashboardView)
    sub_app = admin.admin
    sub_app.state.dashboard = DashboardState(services=services, auth=admin.authentication_backend)
    view = next(v for v in admin._views if isinstance(v, DashboardView))
    routes = sub_app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, Route) and route.name == "index":
            # SQLAdmin's own index renders an empty page; ours keeps its @login_required through the exposed method
            routes[i] = Route("/", endpoint=view.page, name="index")
    routes.insert(0, Route("/dashboard.json", endpoint=dashboard_json, name="dashboard_json", methods=["GET"]))
