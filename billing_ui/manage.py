"""The self-service actions of the billing page: change plan (preview, then confirm), withdraw a pending change,
cancel at period end with an optional reason, resume; a past-due plan is cancelled now instead (confirmed on a page
of its own first), with what it owes voided.

Adapters only: each resolves the link and the form (size, CSRF), calls one service with the end user as actor
(`customer:<id>`), and redirects to the page with a notice or an error code. The preview is a GET that changes
nothing (Stripe's create_preview); its proration second is signed into the confirmation form.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from billing_ui import csrf
from billing_ui.formatting import day, money
from billing_ui.i18n import translator
from billing_ui.manage_view import can_cancel_now_here, preview_signature, preview_valid
from billing_ui.routes import _guarded_post, _page_url, _session_for_form, language_of, opened_link, render
from payment.billing import entitlements
from payment.errors import PaymentError, StripeError
from payment.models import BillingSession
from payment.runtime import services_of
from payment.subscriptions import changes, turns
from payment.subscriptions import service as subscriptions

ENDING_REASONS = {
    "cancel": "Canceled at period end by the user.",
    "cancel_now": "Canceled now by the user while a payment was overdue.",
}


def _actor(billing: BillingSession) -> str:
    return f"customer:{billing.customer_id}"


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _code(exc: PaymentError) -> str:
    if isinstance(exc, StripeError):
        return "stripe"
    if isinstance(exc, turns.TurnBusy):
        return "busy"
    return "change_not_offered" if exc.code == "change_not_offered" else "change_failed"


async def change_preview(request: Request) -> Response:
    """What changing to a plan costs (due now, next charge and date), with a Confirm form."""
    services = services_of(request)
    token = request.path_params["token"]
    plan_slug = request.query_params.get("plan", "")[:128]
    async with services.db.session() as session:
        billing = await opened_link(request, session)
        if isinstance(billing, Response):
            return billing
        language = language_of(request, billing)
        sub = await entitlements.live_subscription(session, billing.customer, billing.app)
    # Stripe's preview is read with no session open
    try:
        if sub is None:
            raise PaymentError("No subscription to change.", code="change_failed")
        preview = await changes.preview_change(
            services.db, services.stripe, sub.id, app=billing.app, plan_slug=plan_slug, actor=_actor(billing)
        )
    except PaymentError as exc:
        return RedirectResponse(_page_url(token, language, error=_code(exc)), status_code=303)
    t = translator(language)
    issued = int(time.time())
    proration = preview.proration_date or 0
    return render(
        "change.html",
        language,
        request=request,
        app_name=billing.app.name,
        app_logo=billing.app.logo_url,
        back_url=billing.app.return_url,
        heading=t("preview_heading", plan=preview.plan.name),
        kind=preview.kind,
        plan_slug=preview.plan.slug,
        due_now=money(preview.amount_due_now, preview.currency, language),
        next_charge=t(
            "preview_next_charge_value",
            amount=money(preview.next_charge_amount, preview.currency, language),
            date=day(preview.next_charge_at, language),
        ),
        effective=day(preview.effective_at, language),
        proration_date=proration,
        issued=issued,
        signature=preview_signature(services.settings.secret_key, billing.id, preview.plan.slug, proration, issued),
        csrf=csrf.token_for(services.settings.secret_key, billing.id),
        confirm_action=f"/billing/{token}/change",
        page_url=_page_url(token, language),
    )


async def change_confirm(request: Request) -> Response:
    services = services_of(request)
    guarded = await _guarded_post(request)
    if isinstance(guarded, Response):
        return guarded
    form, language = guarded
    token = request.path_params["token"]
    plan_slug = form.get("plan", "")[:128]
    raw_date, raw_issued = form.get("proration_date", ""), form.get("issued", "")
    async with services.db.transaction() as session:
        billing = await _session_for_form(request, session, form, language)
        if isinstance(billing, Response):
            return billing
        if not (raw_date.isdigit() and raw_issued.isdigit()) or not preview_valid(
            services.settings.secret_key,
            billing.id,
            plan_slug,
            int(raw_date),
            int(raw_issued),
            form.get("signature", ""),
        ):
            return RedirectResponse(_page_url(token, language, error="preview_stale"), status_code=303)
        sub = await entitlements.live_subscription(session, billing.customer, billing.app)
    # the change is a Stripe turn of its own: no transaction of ours is open while Stripe answers
    try:
        if sub is None:
            raise PaymentError("No subscription to change.", code="change_failed")
        outcome = await changes.change_plan(
            services.db,
            services.stripe,
            sub.id,
            app=billing.app,
            plan_slug=plan_slug,
            proration_date=int(raw_date) or None,
            actor=_actor(billing),
            ip=_ip(request),
        )
    except PaymentError as exc:
        return RedirectResponse(_page_url(token, language, error=_code(exc)), status_code=303)
    if outcome.declined:
        return RedirectResponse(_page_url(token, language, error="upgrade_declined"), status_code=303)
    notice = "upgraded" if outcome.kind == changes.UPGRADE else "downgrade_scheduled"
    return RedirectResponse(_page_url(token, language, notice=notice), status_code=303)


async def _act(request: Request, action: str) -> Response:
    services = services_of(request)
    guarded = await _guarded_post(request)
    if isinstance(guarded, Response):
        return guarded
    form, language = guarded
    token = request.path_params["token"]
    async with services.db.transaction() as session:
        billing = await _session_for_form(request, session, form, language)
        if isinstance(billing, Response):
            return billing
        sub = await entitlements.live_subscription(session, billing.customer, billing.app)
    actor = _actor(billing)
    # each action is a Stripe turn of its own: no transaction of ours is open while Stripe answers
    try:
        if sub is None or sub.source != "stripe":
            raise PaymentError("No subscription to manage here.", code="change_failed")
        if action == "keep":
            await changes.cancel_pending_change(services.db, services.stripe, sub.id, actor=actor, ip=_ip(request))
            notice = "pending_canceled"
        elif action == "cancel_now":  # a past-due plan ends now: at the period end Stripe would still retry
            await subscriptions.cancel_now(
                services.db,
                sub.id,
                gateway=services.stripe,
                reason=ENDING_REASONS[action],
                customer_reason=form.get("reason", "")[:2000],
                actor=actor,
                ip=_ip(request),
                owed_only=True,
            )
            notice = "canceled_now"
        elif action == "cancel":
            await subscriptions.cancel_at_period_end(
                services.db,
                sub.id,
                gateway=services.stripe,
                reason=ENDING_REASONS[action],
                customer_reason=form.get("reason", "")[:2000],
                actor=actor,
                ip=_ip(request),
            )
            notice = "cancel_scheduled"
        else:
            await subscriptions.resume(
                services.db,
                sub.id,
                gateway=services.stripe,
                reason="Resumed by the user.",
                actor=actor,
                ip=_ip(request),
            )
            notice = "resumed"
    except PaymentError as exc:
        return RedirectResponse(_page_url(token, language, error=_code(exc)), status_code=303)
    return RedirectResponse(_page_url(token, language, notice=notice), status_code=303)


async def cancel_now_review(request: Request) -> Response:
    """The confirmation of cancelling a past-due plan now: what happens, in plain words, before anything does (a GET
    that changes nothing)."""
    services = services_of(request)
    token = request.path_params["token"]
    async with services.db.session() as session:
        billing = await opened_link(request, session)
        if isinstance(billing, Response):
            return billing
        language = language_of(request, billing)
        ent = await entitlements.current(session, billing.customer, billing.app)
    if not can_cancel_now_here(ent):
        return RedirectResponse(_page_url(token, language, error="change_not_offered"), status_code=303)
    t = translator(language)
    return render(
        "cancel_now.html",
        language,
        request=request,
        app_name=billing.app.name,
        app_logo=billing.app.logo_url,
        back_url=billing.app.return_url,
        heading=t("cancel_now_confirm_heading", plan=ent.plan_name),
        text=t("cancel_now_confirm_text", plan=ent.plan_name),
        csrf=csrf.token_for(services.settings.secret_key, billing.id),
        confirm_action=f"/billing/{token}/cancel-now",
        page_url=_page_url(token, language),
    )


async def cancel_now(request: Request) -> Response:
    return await _act(request, "cancel_now")


async def keep_plan(request: Request) -> Response:
    return await _act(request, "keep")


async def cancel(request: Request) -> Response:
    return await _act(request, "cancel")


async def resume(request: Request) -> Response:
    return await _act(request, "resume")


routes: list[BaseRoute] = [
    Route("/{token}/change", change_preview, methods=["GET"]),
    Route("/{token}/change", change_confirm, methods=["POST"]),
    Route("/{token}/pending/cancel", keep_plan, methods=["POST"]),
    Route("/{token}/cancel", cancel, methods=["POST"]),
    Route("/{token}/cancel-now", cancel_now_review, methods=["GET"]),
    Route("/{token}/cancel-now", cancel_now, methods=["POST"]),
    Route("/{token}/resume", resume, methods=["POST"]),
]
