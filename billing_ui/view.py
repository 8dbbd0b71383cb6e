"""What the billing page shows, computed from the payment.billing rules in the page's language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_ui.formatting import day, money
from billing_ui.i18n import ERROR_KEYS, translator
from billing_ui.manage_view import can_self_manage, change_refusal, manage_state
from payment.billing import catalog, entitlements, invoices
from payment.billing.checkout import has_stripe_billing
from payment.billing.entitlements import Entitlement
from payment.documents import service as documents
from payment.dunning import cases
from payment.models import App, BillingSession, Invoice, Plan
from payment.promotions import service as promotions
from payment.subscriptions import trials
from payment.subscriptions.trials import TrialOffer


@dataclass(frozen=True)
class CurrentPlan:
    slug: str
    name: str
    status: str
    badge: str
    tone: str
    help: str


@dataclass(frozen=True)
class PlanCard:
    slug: str
    name: str
    price: str
    interval: str
    description: str
    features: list[str] = field(default_factory=list)
    current: bool = False
    action: str | None = None  # subscribe | change | portal | None
    trial: str = ""  # the trial offered, or why none is


def describe_current(ent: Entitlement, language: str, *, retry_at: datetime | None = None) -> CurrentPlan:
    t = translator(language)
    end = day(ent.current_period_end, language)
    if not ent.is_paid:
        return CurrentPlan(ent.plan_slug, ent.plan_name, "free", t("status_free"), "muted", t("free_help"))
    if ent.status == "past_due":
        help_key = "past_due_help" if ent.source == "stripe" else "past_due_help_manual"
        help_text = t(help_key, plan=ent.plan_name)
        if retry_at is not None:  # Stripe's next scheduled retry of the failed invoice
            help_text = f"{help_text} {t('past_due_retry', date=day(retry_at, language))}"
        return CurrentPlan(ent.plan_slug, ent.plan_name, "past_due", t("status_past_due"), "bad", help_text)
    cancels = day(ent.cancels_on, language)
    if cancels:
        return CurrentPlan(
            ent.plan_slug,
            ent.plan_name,
            "canceling",
            t("status_cancels", date=cancels),
            "warn",
            t("cancels_on", date=cancels),
        )
    if ent.status == "trialing":
        return CurrentPlan(
            ent.plan_slug,
            ent.plan_name,
            "trialing",
            t("status_trialing"),
            "ok",
            t("trial_ends", date=end) if end else "",
        )
    help_text = ""
    if end:
        help_text = t("renews_on", date=end) if ent.source == "stripe" else t("active_until", date=end)
    return CurrentPlan(ent.plan_slug, ent.plan_name, "active", t("status_active"), "ok", help_text)


def trial_text(trial: TrialOffer | None, app_name: str, language: str) -> str:
    t = translator(language)
    if trial is None:
        return ""
    if trial.refused:
        return t("trial_not_offered", app=app_name)
    return t("trial_offer" if trial.requires_card else "trial_offer_no_card", days=trial.days)


def plan_card(
    plan: Plan,
    ent: Entitlement,
    language: str,
    *,
    has_portal: bool,
    trial: TrialOffer | None = None,
    app_name: str = "",
    app: App | None = None,
) -> PlanCard:
    t = translator(language)
    current = ent.plan is not None and ent.plan.id == plan.id
    action: str | None = None
    if not current and not plan.is_free:
        # a paid subscriber changes plan here (previewed, through Stripe), never through a second checkout
        if ent.is_paid and app is not None and can_self_manage(ent):
            action = "change" if change_refusal(app, ent, plan) is None else None
        else:
            action = ("portal" if has_portal else None) if ent.is_paid else "subscribe"
    price = t("status_free") if plan.is_free else money(plan.price_cents, plan.currency, language)
    return PlanCard(
        slug=plan.slug,
        name=plan.name,
        price=price,
        interval="" if plan.is_free else t("per_year" if plan.interval == "year" else "per_month"),
        description=plan.description,
        features=list(plan.features),
        current=current,
        action=action,
        trial=trial_text(trial, app_name, language) if action == "subscribe" else "",
    )


def messages(
    query: Mapping[str, str], ent: Entitlement, language: str, *, trial_refused: str | None = None, app_name: str = ""
) -> list[tuple[str, str]]:
    """Notices carried in the page URL after a redirect (codes only: the words come from the catalogue), and why
    the current subscription's trial was refused."""
    t = translator(language)
    found: list[tuple[str, str]] = []
    if trial_refused:
        key = "notice_trial_refused" if trial_refused == trials.CARD_HAD_TRIAL else "notice_trial_refused_customer"
        found.append(("info", t(key, app=app_name)))
    if query.get("notice") == "subscribed" and ent.is_paid:
        found.append(("ok", t("notice_subscribed", plan=ent.plan_name)))
    if query.get("notice") == "buyer_saved":
        found.append(("ok", t("notice_buyer_saved")))
    pending = ent.subscription.pending_plan if ent.subscription is not None else None
    notice = query.get("notice")
    if notice == "upgraded" and ent.is_paid:
        found.append(("ok", t("notice_upgraded", plan=ent.plan_name)))
    elif notice == "downgrade_scheduled" and pending is not None:
        found.append(("ok", t("notice_downgrade_scheduled", plan=pending.name)))
    elif notice == "pending_canceled":
        found.append(("ok", t("notice_pending_canceled", plan=ent.plan_name)))
    elif notice == "cancel_scheduled":
        found.append(("ok", t("notice_cancel_scheduled")))
    elif notice == "resumed":
        found.append(("ok", t("notice_resumed")))
    elif notice == "canceled_now":
        found.append(("ok", t("notice_canceled_now")))
    checkout_state = query.get("checkout")
    if checkout_state == "canceled" and not ent.is_paid:
        found.append(("info", t("notice_canceled", plan=ent.plan_name)))
    elif checkout_state == "expired":
        found.append(("info", t("checkout_expired")))
    elif checkout_state == "unknown":
        found.append(("error", t("unknown_checkout")))
    error = query.get("error", "")
    if error in ERROR_KEYS:
        found.append(("error", t(ERROR_KEYS[error])))
    return found


def invoice_row(inv: Invoice, language: str, documents: list[tuple[str, str | None]]) -> dict[str, Any]:
    """One line of the invoice history; a discounted invoice also gets its Subtotal / Discount / Total, as Stripe
    computed them (amount = subtotal - discount)."""
    t = translator(language)
    row: dict[str, Any] = {
        "date": day(inv.paid_at or inv.created_at, language),
        "amount": money(inv.amount_cents, inv.currency, language),
        "breakdown": [],
        "status": t(f"invoice_{inv.status}"),
        "documents": documents,
    }
    if inv.discount_cents > 0:
        subtotal = inv.subtotal_cents if inv.subtotal_cents is not None else inv.amount_cents + inv.discount_cents
        row["breakdown"] = [
            ("subtotal", t("invoice_subtotal"), money(subtotal, inv.currency, language)),
            ("discount", t("invoice_discount_line"), "−" + money(inv.discount_cents, inv.currency, language)),
            ("total", t("invoice_total"), money(inv.amount_cents, inv.currency, language)),
        ]
    return row


async def invoice_documents(
    session: AsyncSession, billing: BillingSession, language: str, token: str
) -> dict[int, list[tuple[str, str | None]]]:
    """Per invoice, the current version of each of its documents: (label, download URL or None while rendering)."""
    t = translator(language)
    docs = await documents.documents_for(session, customer_id=billing.customer_id, limit=200)
    replaced = {d.replaces_id for d in docs if d.replaces_id}
    found: dict[int, list[tuple[str, str | None]]] = {}
    for doc in sorted(docs, key=lambda d: d.id):
        if doc.id in replaced:
            continue
        label = t("doc_tax_invoice" if doc.kind == "tax_invoice" else "doc_credit_note", number=doc.number)
        url = f"/billing/{token}/documents/{doc.id}" if doc.sha256 else None
        found.setdefault(doc.invoice_id, []).append((label, url))
    return found


async def billing_view(
    session: AsyncSession, billing: BillingSession, language: str, query: Mapping[str, str], *, token: str = ""
) -> dict[str, Any]:
    ent = await entitlements.current(session, billing.customer, billing.app)
    plans = await catalog.plans_for_app(session, billing.app)
    rows = await invoices.history(session, billing.customer)
    has_portal = await has_stripe_billing(session, billing.customer)
    docs = await invoice_documents(session, billing, language, token)
    buyer = await documents.buyer_details_of(session, billing.customer_id)
    retry_at = None
    if ent.status == "past_due" and ent.subscription is not None:
        retry_at = await cases.next_retry(session, ent.subscription.id)
    offers = {p.id: await trials.offer(session, billing.customer, billing.app, p) for p in plans}
    refused = await trials.refusal(session, ent.subscription.id) if ent.subscription is not None else None
    app_name = billing.app.name
    cards = [
        plan_card(p, ent, language, has_portal=has_portal, trial=offers[p.id], app_name=app_name, app=billing.app)
        for p in plans
    ]
    return {
        "current": describe_current(ent, language, retry_at=retry_at),
        "plans": cards,
        "manage": manage_state(ent, language),
        "invoices": [invoice_row(inv, language, docs.get(inv.id, [])) for inv in rows],
        "offer_codes": any(card.action == "subscribe" for card in cards)
        and await promotions.active_codes_for(session, billing.app) > 0,
        "buyer": {
            "company_name": buyer.company_name if buyer else "",
            "address": buyer.address if buyer else "",
            "tax_id": buyer.tax_id if buyer else "",
            "branch_code": buyer.branch_code if buyer else "",
        },
        "show_portal": has_portal,
        "messages": messages(query, ent, language, trial_refused=refused, app_name=app_name),
    }
