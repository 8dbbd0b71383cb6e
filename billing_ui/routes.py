"""Hosted billing pages under /billing/<token>.

Adapters only: resolve the token, open a session or transaction, call the payment.billing rules, render. An expired
or unknown token, a stale form or a Stripe failure becomes a friendly page or message, never a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from billing_ui import csrf
from billing_ui.i18n import ERROR_KEYS, LANGUAGES, choose, supported, translator
from billing_ui.view import billing_view
from payment.audit.service import app_actor
from payment.billing import checkout
from payment.billing import portal as portal_service
from payment.billing.catalog import plans_for_app
from payment.billing_sessions import service as billing_sessions
from payment.billing_sessions.service import Resolved
from payment.documents import runner
from payment.documents import service as documents
from payment.errors import NotFound, PaymentError, StripeError
from payment.http import BodyTooLarge, read_limited
from payment.models import App, BillingSession, Plan
from payment.promotions import redeem
from payment.runtime import services_of

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    # No form-action: Subscribe's redirect to Stripe Checkout must not be blocked.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
}


# Stripe errors that say nothing about the request itself: the usual "could not reach" message fits them
STRIPE_OUTAGES = ("stripe_unreachable", "stripe_unavailable", "stripe_rate_limited", "stripe_auth")


def _static(name: str) -> str:
    return f"/billing/static/{name}"


def _page_url(token: str, language: str, **query: str) -> str:
    return f"/billing/{token}?" + urlencode({"lang": language, **query})


def render(
    name: str, language: str, *, status: int = 200, request: Request | None = None, **context: Any
) -> HTMLResponse:
    switch: list[tuple[str, str, str]] = []
    if request is not None:
        for code, label in LANGUAGES.items():
            params = {**request.query_params, "lang": code}
            switch.append((code, label, f"{request.url.path}?{urlencode(params)}"))
    html = TEMPLATES.get_template(name).render(
        t=translator(language), lang=language, static=_static, switch_links=switch, **context
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def language_of(request: Request, billing: BillingSession | None = None, form_lang: str | None = None) -> str:
    requested = form_lang or request.query_params.get("lang")
    return choose(requested, billing.locale if billing else None, request.headers.get("accept-language"))


def link_problem(request: Request, resolved: Resolved | None, language: str) -> HTMLResponse:
    """The friendly page for an expired or unknown link, with the way back to the app when we know it."""
    t = translator(language)
    if resolved is None:
        return render(
            "message.html",
            language,
            status=404,
            request=request,
            heading=t("link_unknown_title"),
            text=t("link_unknown_text"),
        )
    app = resolved.billing_session.app
    return render(
        "message.html",
        language,
        status=410,
        request=request,
        heading=t("link_expired_title"),
        text=t("link_expired_text", app=app.name),
        app_name=app.name,
        back_url=app.return_url,
    )


async def opened_link(request: Request, session: AsyncSession) -> BillingSession | Response:
    """The billing session of the page's link, or the page that says why it does not open (expired, unknown)."""
    resolved = await billing_sessions.resolve(session, request.path_params["token"])
    if resolved is None or resolved.expired:
        return link_problem(request, resolved, language_of(request))
    return resolved.billing_session


async def billing_page(request: Request) -> Response:
    async with services_of(request).db.session() as session:
        billing = await opened_link(request, session)
        if isinstance(billing, Response):
            return billing
        return await _billing_response(request, session, billing, language_of(request, billing))


async def _billing_response(
    request: Request,
    session: AsyncSession,
    billing: BillingSession,
    language: str,
    *,
    status: int = 200,
    promo: PromoForm | None = None,
) -> HTMLResponse:
    """The billing page; with `promo`, the code typed, the plan chosen and why the code was refused (status 422)."""
    services = services_of(request)
    token = request.path_params["token"]
    view = await billing_view(session, billing, language, request.query_params, token=token)
    t = translator(language)
    return render(
        "billing.html",
        language,
        status=status,
        request=request,
        app_name=billing.app.name,
        app_logo=billing.app.logo_url,
        back_url=billing.app.return_url,
        csrf=csrf.token_for(services.settings.secret_key, billing.id),
        subscribe_action=f"/billing/{token}/subscribe",
        portal_action=f"/billing/{token}/portal",
        buyer_action=f"/billing/{token}/buyer",
        manage_actions={
            "change": f"/billing/{token}/change",
            "keep": f"/billing/{token}/pending/cancel",
            "cancel": f"/billing/{token}/cancel",
            "cancel_now": f"/billing/{token}/cancel-now",
            "resume": f"/billing/{token}/resume",
        },
        heading=t("your_plan"),
        promo=promo or PromoForm(),
        **view,
    )


async def _read_form(request: Request, max_bytes: int) -> dict[str, str] | None:
    """The urlencoded form, or None when it is larger than the limit."""
    try:
        body = await read_limited(request, max_bytes)
    except BodyTooLarge:
        return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:  # more fields than any of our forms has: refused like an oversized form
        return None
    return {k: v[0] for k, v in fields.items() if v}


async def _guarded_post(request: Request) -> tuple[dict[str, str], str] | Response:
    """The form and the page language, or the response that refuses the POST (size, CSRF, link)."""
    services = services_of(request)
    form = await _read_form(request, services.settings.max_body_bytes)
    language = language_of(request, None, supported((form or {}).get("lang")))
    if form is None:
        t = translator(language)
        return render(
            "message.html",
            language,
            status=413,
            heading=t("billing"),
            text=t("error_form_expired"),
            link_url=request.url.path.rsplit("/", 1)[0],
            link_text=t("back_to_billing"),
        )
    return form, language


def _form_refused(request: Request, language: str) -> HTMLResponse:
    t = translator(language)
    return render(
        "message.html",
        language,
        status=403,
        request=None,
        heading=t("billing"),
        text=t("error_form_expired"),
        link_url=request.url.path.rsplit("/", 1)[0],
        link_text=t("back_to_billing"),
    )


def _error_code(exc: PaymentError) -> str:
    if isinstance(exc, StripeError):
        return "stripe"
    return exc.code if exc.code in ERROR_KEYS else "stripe"


async def _session_for_form(
    request: Request, session: AsyncSession, form: dict[str, str], language: str
) -> BillingSession | Response:
    """The billing session a posted form acts for, or the page that says why it may not (stale link, bad token)."""
    services = services_of(request)
    resolved = await billing_sessions.resolve(session, request.path_params["token"])
    if resolved is None or resolved.expired:
        return link_problem(request, resolved, language)
    billing = resolved.billing_session
    if not csrf.valid(
        request,
        form.get("csrf", ""),
        secret_key=services.settings.secret_key,
        base_url=services.settings.base_url,
        billing_session_id=billing.id,
    ):
        return _form_refused(request, language)
    return billing


@dataclass(frozen=True)
class PromoForm:
    """The promotion code field as the page shows it again: what was typed, for which plan, and the refusal."""

    code: str = ""
    plan: str = ""
    error: str = ""


def _promo_refusal(reason: str, code: str, plan_slug: str, app: App, plans: list[Plan], language: str) -> str:
    plan_name = next((p.name for p in plans if p.slug == plan_slug), plan_slug)
    return translator(language)(reason, code=code, app=app.name, plan=plan_name)


async def _refuse_code(request: Request, language: str, form: dict[str, str], reason: str) -> Response:
    """The billing page again with status 422: the code kept in its field, the chosen plan marked, the reason."""
    services = services_of(request)
    code = form.get("promotion_code", "").strip()[:64]
    plan_slug = form.get("plan", "")[:128]
    async with services.db.session() as session:
        resolved = await billing_sessions.resolve(session, request.path_params["token"])
        if resolved is None or resolved.expired:
            return link_problem(request, resolved, language)
        billing = resolved.billing_session
        plans = await plans_for_app(session, billing.app)
        error = _promo_refusal(reason, code, plan_slug, billing.app, plans, language)
        promo = PromoForm(code=code, plan=plan_slug, error=error)
        return await _billing_response(request, session, billing, language, status=422, promo=promo)


async def _checked_code(request: Request, form: dict[str, str], language: str) -> redeem.AcceptedCode | Response | None:
    """The promotion code typed with the Subscribe, checked before Checkout; None when none was typed; the page
    that refuses the form (link, CSRF) or the code (422) otherwise."""
    services = services_of(request)
    code = form.get("promotion_code", "").strip()
    if not code:
        return None
    async with services.db.session() as session:
        billing = await _session_for_form(request, session, form, language)
        if isinstance(billing, Response):
            return billing
        app_id = billing.app_id
        customer_id, stripe_customer = billing.customer_id, billing.customer.stripe_customer_id
    try:
        return await redeem.check_code(
            services.db,
            services.stripe,
            app_id=app_id,
            customer_id=customer_id,
            stripe_customer_id=stripe_customer,
            plan_slug=form.get("plan", ""),
            code=code,
        )
    except redeem.PromotionCodeRefused as exc:
        return await _refuse_code(request, language, form, exc.code)
    except PaymentError as exc:
        token = request.path_params["token"]
        return RedirectResponse(_page_url(token, language, error=_error_code(exc)), status_code=303)


async def subscribe(request: Request) -> Response:
    services = services_of(request)
    guarded = await _guarded_post(request)
    if isinstance(guarded, Response):
        return guarded
    form, language = guarded
    token = request.path_params["token"]
    accepted = await _checked_code(request, form, language)
    if isinstance(accepted, Response):
        return accepted
    async with services.db.session() as session:
        billing = await _session_for_form(request, session, form, language)
        if isinstance(billing, Response):
            return billing
        billing_id, actor = billing.id, app_actor(billing.app.slug)
    try:
        # Stripe is called with no transaction open (checkout.subscribe takes the customer's turn)
        start = await checkout.subscribe(
            services.db,
            services.stripe,
            billing_session_id=billing_id,
            plan_slug=form.get("plan", ""),
            base_url=services.settings.base_url,
            token=token,
            locale=language,
            actor=actor,
            promotion_code=accepted.stripe_promotion_code_id if accepted else None,
        )
    except StripeError as exc:
        refused = exc
    except PaymentError as exc:
        # what was done before the refusal (a linked Stripe customer, expired checkouts) is kept
        return RedirectResponse(_page_url(token, language, error=_error_code(exc)), status_code=303)
    else:
        return RedirectResponse(start.url, status_code=303)
    if accepted is not None and refused.code not in STRIPE_OUTAGES:
        # Stripe refused the discount itself (the code's last use went to someone else a moment ago)
        return await _refuse_code(request, language, form, "promo_rejected")
    return RedirectResponse(_page_url(token, language, error=_error_code(refused)), status_code=303)


async def portal(request: Request) -> Response:
    services = services_of(request)
    guarded = await _guarded_post(request)
    if isinstance(guarded, Response):
        return guarded
    form, language = guarded
    token = request.path_params["token"]
    async with services.db.session() as session:
        billing = await _session_for_form(request, session, form, language)
        if isinstance(billing, Response):
            return billing
        customer_id, app_id, actor = billing.customer_id, billing.app_id, app_actor(billing.app.slug)
    back = f"{services.settings.base_url}{_page_url(token, language)}"
    try:
        # Stripe is called with no transaction open (the portal's configuration, then its session)
        url = await portal_service.open_portal(
            services.db, services.stripe, customer_id=customer_id, app_id=app_id, back_url=back, actor=actor
        )
    except PaymentError as exc:
        return RedirectResponse(_page_url(token, language, error=_error_code(exc)), status_code=303)
    return RedirectResponse(url, status_code=303)


async def checkout_return(request: Request) -> Response:
    services = services_of(request)
    token = request.path_params["token"]
    checkout_id = request.query_params.get("session_id", "")[:255]
    async with services.db.session() as session:
        resolved = await billing_sessions.resolve(session, token)
        if resolved is None or resolved.expired:
            return link_problem(request, resolved, language_of(request))
        billing = resolved.billing_session
        language = language_of(request, billing)
        state = await checkout.checkout_state(session, billing, checkout_id) if checkout_id else None
    if state is None:
        return RedirectResponse(_page_url(token, language, checkout="unknown"), status_code=303)
    if state.state == "active":
        return RedirectResponse(_page_url(token, language, notice="subscribed"), status_code=303)
    if state.state == "expired":
        return RedirectResponse(_page_url(token, language, checkout="expired"), status_code=303)
    here = f"/billing/{token}/return?" + urlencode({"session_id": checkout_id, "lang": language})
    status_url = f"/billing/{token}/status?" + urlencode({"session_id": checkout_id})
    return render(
        "processing.html",
        language,
        status=202,
        request=request,
        app_name=billing.app.name,
        back_url=billing.app.return_url,
        status_url=status_url,
        done_url=here,
        refresh_url=here,
    )


async def checkout_status(request: Request) -> Response:
    services = services_of(request)
    checkout_id = request.query_params.get("session_id", "")[:255]
    headers = {"Cache-Control": "no-store"}
    async with services.db.session() as session:
        resolved = await billing_sessions.resolve(session, request.path_params["token"])
        if resolved is None or resolved.expired:
            return JSONResponse({"state": "link_expired"}, status_code=404, headers=headers)
        state = await checkout.checkout_state(session, resolved.billing_session, checkout_id) if checkout_id else None
    if state is None:
        return JSONResponse({"state": "unknown"}, status_code=404, headers=headers)
    return JSONResponse({"state": state.state, "plan": state.plan_slug}, headers=headers)


async def save_buyer(request: Request) -> Response:
    """The buyer's company details for tax invoices; documents already issued get replacements (by the job)."""
    services = services_of(request)
    guarded = await _guarded_post(request)
    if isinstance(guarded, Response):
        return guarded
    form, language = guarded
    token = request.path_params["token"]
    try:
        async with services.db.transaction() as session:
            billing = await _session_for_form(request, session, form, language)
            if isinstance(billing, Response):
                return billing
            await documents.save_buyer_details(
                session,
                billing.customer,
                company_name=form.get("company_name", ""),
                address=form.get("address", ""),
                tax_id=form.get("tax_id", ""),
                branch_code=form.get("branch_code", ""),
                actor=f"customer:{billing.customer_id}",
                ip=request.client.host if request.client else None,
            )
    except PaymentError:
        return RedirectResponse(_page_url(token, language, error="buyer_invalid") + "#buyer", status_code=303)
    await runner.request_run(services.jobs)
    return RedirectResponse(_page_url(token, language, notice="buyer_saved") + "#buyer", status_code=303)


async def download_document(request: Request) -> Response:
    """A tax invoice or credit note of this billing session's customer, as a PDF (audited)."""
    services = services_of(request)
    token = request.path_params["token"]
    raw_id = str(request.path_params["document_id"])
    async with services.db.transaction() as session:
        resolved = await billing_sessions.resolve(session, token)
        if resolved is None or resolved.expired:
            return link_problem(request, resolved, language_of(request))
        billing = resolved.billing_session
        language = language_of(request, billing)
        try:
            if not raw_id.isdigit() or len(raw_id) > 18:
                raise NotFound("This document does not exist.")
            doc = await documents.download(
                session,
                int(raw_id),
                actor=f"customer:{billing.customer_id}",
                customer_id=billing.customer_id,
                ip=request.client.host if request.client else None,
            )
        except PaymentError:
            t = translator(language)
            return render(
                "message.html",
                language,
                status=404,
                request=request,
                heading=t("invoices"),
                text=t("doc_preparing"),
                link_url=f"/billing/{token}",
                link_text=t("back_to_billing"),
            )
    assert doc.pdf is not None
    return Response(
        doc.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{doc.number}.pdf"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def no_token(request: Request) -> Response:
    return link_problem(request, None, language_of(request))


routes: list[BaseRoute] = [
    Mount("/static", StaticFiles(directory=HERE / "static"), name="billing_static"),
    Route("/", no_token, methods=["GET"]),
    Route("/{token}", billing_page, methods=["GET"]),
    Route("/{token}/subscribe", subscribe, methods=["POST"]),
    Route("/{token}/portal", portal, methods=["POST"]),
    Route("/{token}/return", checkout_return, methods=["GET"]),
    Route("/{token}/status", checkout_status, methods=["GET"]),
    Route("/{token}/buyer", save_buyer, methods=["POST"]),
    Route("/{token}/documents/{document_id}", download_document, methods=["GET"]),
    Route("/{rest:path}", no_token, methods=["GET"]),
]
