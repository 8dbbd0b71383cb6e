"""Audit rows as sentences an operator reads ("Refund of THB 100.00 on invoice #12, pending"), with links to what
they name; the raw JSON stays one click away on the page. Also: who did it, by email rather than "admin:1"."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from admin_views.formatting import money, status_label
from payment.models import AdminUser

UrlFor = Callable[..., Any]
LINKED = {"customer", "subscription", "invoice", "refund", "plan", "app"}


async def actor_emails(session: AsyncSession, actors: Iterable[str]) -> dict[str, str]:
    """{"admin:3": "ops@example.com"} for the admin actors among these."""
    ids = {
        int(actor.split(":", 1)[1])
        for actor in actors
        if actor.startswith("admin:") and actor.split(":", 1)[1].isdigit()
    }
    if not ids:
        return {}
    found = await session.execute(select(AdminUser.id, AdminUser.email).where(AdminUser.id.in_(ids)))
    return {f"admin:{admin_id}": email for admin_id, email in found.all()}


def actor_label(actor: str | None, names: dict[str, str] | None) -> str:
    """An admin by email; the service's own actors in words."""
    if not actor:
        return ""
    if names and actor in names:
        return names[actor]
    return {"stripe": "Stripe", "system": "System", "seed": "Setup", "test": "Test"}.get(actor, actor)


def _link(url_for: UrlFor, kind: str, pk: Any, text: str | None = None) -> Markup:
    label = escape(text or f"{kind} #{pk}")
    if kind not in LINKED or pk in (None, ""):
        return label
    return Markup('<a href="{}">{}</a>').format(url_for("admin:details", identity=kind, pk=pk), label)


def _amount(details: dict[str, Any]) -> str:
    cents, currency = details.get("amount_cents"), details.get("currency")
    return money(int(cents), str(currency)) if isinstance(cents, int) and currency else ""


def _days(n: Any) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def sentence(row: Any, url_for: UrlFor) -> Markup:
    """What this audit row says happened, in one sentence with links."""
    d: dict[str, Any] = row.details if isinstance(row.details, dict) else {}
    kind, pk, action = row.entity_type or "", row.entity_id or "", row.action or ""
    this = _link(url_for, kind, pk, f"{kind.replace('_', ' ').capitalize()} #{pk}") if kind else Markup("")
    reason = Markup(" — “{}”").format(d["reason"]) if d.get("reason") else Markup("")
    until = f" until {str(d['current_period_end'])[:10]}" if d.get("current_period_end") else ""
    status = f", {status_label(str(d['status'])).lower()}" if d.get("status") else ""
    if action == "refund.issued":
        return (
            Markup("Refund {} of {} on {}{}").format(
                _link(url_for, "refund", pk, f"#{pk}"),
                _amount(d),
                _link(url_for, "invoice", d.get("invoice_id")),
                status,
            )
            + reason
        )
    if action == "payment.recorded_manual":
        method = str(d.get("payment_method") or "").replace("_", " ")
        return Markup("Manual payment of {} ({}, ref. {}) recorded as {} for {}").format(
            _amount(d),
            method,
            d.get("reference_number", ""),
            _link(url_for, "invoice", pk),
            _link(url_for, "subscription", d.get("subscription_id")),
        )
    if action == "subscription.extended":
        return Markup("{} extended by {}{}").format(this, _days(d.get("days")), until) + reason
    if action == "subscription.granted":
        span = f"{d['months']} months" if d.get("months") else _days(d.get("days"))
        return Markup("{} granted: plan {} for {}{}").format(this, d.get("plan", ""), span, until) + reason
    simple = {
        "subscription.cancel_at_period_end": "{} set to cancel at period end{}",
        "subscription.resumed": "{} resumed; it renews again",
        "subscription.canceled_now": "{} canceled immediately",
        "subscription.replaced": "{} ended, replaced by a new subscription",
        "subscription.expired": "{} expired",
        "plan.created": "Plan {} created",
        "plan.updated": "Plan {} changed",
        "plan.activated": "Plan {} activated: on the pricing page",
        "plan.deactivated": "Plan {} deactivated: off the pricing page",
        "app.created": "App {} created",
        "app.updated": "App {} changed",
        "app.key_rotated": "API key of app {} rotated",
        "app.key_copied": "API key of app {} copied",
        "customer.created": "{} created",
        "customer.updated": "{} changed",
        "customer.stripe_linked": "{} linked to its Stripe customer",
    }
    if action in simple:
        named = (
            _link(url_for, kind, pk, str(d["slug"]))
            if kind in ("plan", "app") and d.get("slug")
            else _link(url_for, kind, pk, f"#{pk}")
            if kind in ("plan", "app")
            else this
        )
        # constant templates; the values are escaped by format
        return Markup(simple[action]).format(named, until) + reason  # noqa: S704
    words = action.replace("_", " ").replace(".", ": ", 1)
    return Markup("{}{}{}").format(words[:1].upper() + words[1:], Markup(" — ") + this if kind else "", status) + reason
