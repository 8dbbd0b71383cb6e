"""What the self-service part of the billing page shows: next charge, pending change, cancel and resume (or cancel
now, when a renewal payment failed), and which plan changes are offered (by the app's rules)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from billing_ui.formatting import day, money
from billing_ui.i18n import translator
from payment.billing.entitlements import Entitlement
from payment.dunning.cases import DELINQUENT_STATUSES
from payment.models import App, Plan
from payment.subscriptions import changes

PREVIEW_MAX_AGE = 1800
"""Seconds a confirmed preview stays valid: past that, the user reviews the price again."""


def can_self_manage(ent: Entitlement) -> bool:
    """A live Stripe subscription that is paid up: its user may change plan, cancel and resume here."""
    sub = ent.subscription
    return sub is not None and sub.source == "stripe" and sub.status == "active"


def can_cancel_here(ent: Entitlement) -> bool:
    """A Stripe subscription its user may cancel at period end (and resume) here: a paid-up one, or a trial.

    Stripe's portal offers the card and invoices only (payment/billing/portal.py), so this page is the one place a
    user ends a trial; plan changes stay for paid-up subscriptions."""
    sub = ent.subscription
    return can_self_manage(ent) or (sub is not None and sub.source == "stripe" and sub.status == "trialing")


def can_cancel_now_here(ent: Entitlement) -> bool:
    """A Stripe subscription whose renewal payment failed: its user may cancel it now here (not at the period end,
    where Stripe would keep retrying the unpaid invoice until then); what it owes is voided."""
    sub = ent.subscription
    return sub is not None and sub.source == "stripe" and sub.status in DELINQUENT_STATUSES


def manage_state(ent: Entitlement, language: str) -> dict[str, Any]:
    t = translator(language)
    sub = ent.subscription
    if can_cancel_now_here(ent):
        return {"enabled": False, "cancelable": False, "cancel_now": True}
    if sub is None or not can_cancel_here(ent):
        return {"enabled": False, "cancelable": False}
    if not can_self_manage(ent):
        return {
            "enabled": False,
            "cancelable": True,
            "canceling": ent.cancels_on is not None,
            "cancel_help": t("cancel_help", date=day(sub.current_period_end, language)),
        }
    pending = None
    if sub.pending_plan is not None and sub.pending_change_at is not None:
        pending = {
            "text": t("pending_change", plan=sub.pending_plan.name, date=day(sub.pending_change_at, language)),
            "keep": t("keep_current_plan", plan=ent.plan_name),
        }
    next_charge = None
    if ent.cancels_on is None and sub.current_period_end is not None and ent.plan is not None:
        plan = sub.pending_plan if pending and sub.pending_change_at == sub.current_period_end else ent.plan
        assert plan is not None
        next_charge = t(
            "next_charge",
            amount=money(plan.price_cents, plan.currency, language),
            date=day(sub.current_period_end, language),
        )
    return {
        "enabled": True,
        "cancelable": True,
        "canceling": ent.cancels_on is not None,
        "pending": pending,
        "next_charge": next_charge,
        "cancel_help": t("cancel_help", date=day(sub.current_period_end, language)),
    }


def change_refusal(app: App, ent: Entitlement, plan: Plan) -> str | None:
    """Why this plan is not offered as a change (None: it is)."""
    if ent.plan is None:
        return "no plan"
    return changes.refusal(app, ent.plan, plan)


def preview_signature(secret_key: str, billing_id: object, plan_slug: str, proration_date: int, issued: int) -> str:
    """Binds a previewed proration date to this billing session, plan and issue time, so a form cannot pick its own."""
    message = f"aquoris-plan-change:{billing_id}:{plan_slug}:{proration_date}:{issued}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def preview_valid(
    secret_key: str, billing_id: object, plan_slug: str, proration_date: int, issued: int, signature: str
) -> bool:
    expected = preview_signature(secret_key, billing_id, plan_slug, proration_date, issued)
    fresh = 0 <= time.time() - issued <= PREVIEW_MAX_AGE
    return fresh and hmac.compare_digest(expected, signature)
