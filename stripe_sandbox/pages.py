"""Hosted test Checkout and billing portal pages (server-rendered; forms POST, GET never changes state)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from . import coupons as cp
from .billing import complete_checkout, run_due
from .cards import CardError, charge_error, parse_card
from .payments import default_payment_method
from .periods import current_period
from .portal_card import update_card
from .portal_config import features_of
from .store import JSON, Store

ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))
SYMBOLS = {"usd": "$", "thb": "฿", "eur": "€", "gbp": "£", "jpy": "¥", "sgd": "S$"}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "ugx", "xaf", "xof"}


def format_amount(amount: int, currency: str) -> str:
    symbol = SYMBOLS.get(currency.lower(), currency.upper() + " ")
    if currency.lower() in ZERO_DECIMAL:
        return f"{symbol}{amount:,}"
    return f"{symbol}{amount / 100:,.2f}"


def interval_text(price: JSON) -> str:
    recurring = price.get("recurring") or {}
    count = int(recurring.get("interval_count") or 1)
    interval = recurring.get("interval") or "month"
    return f"per {interval}" if count == 1 else f"every {count} {interval}s"


def format_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%-d %B %Y")


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(template).render(**context), status_code=status)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    run_due(store, retry_days=request.app.state.config.retry_days)
    return store


def _checkout_context(store: Store, session: JSON) -> dict[str, Any]:
    first = session["_line_items"][0]
    price = store.get("price", first["price"])
    assert price is not None
    product = store.get("product", price["product"])
    total = sum(
        int(p["unit_amount"]) * int(line["quantity"])
        for line in session["_line_items"]
        if (p := store.get("price", line["price"])) is not None
    )
    cust = store.get("customer", session["customer"]) if session.get("customer") else None
    email = (cust or {}).get("email") or session.get("customer_email")
    trial_days = (session.get("_subscription_data") or {}).get("trial_period_days")
    discounts = session.get("discounts") or []
    promo = store.get("promotion_code", discounts[0]["promotion_code"] or "") if discounts else None
    cpn = store.get("coupon", discounts[0]["coupon"]) if discounts else None
    off = cp.amount_off(cpn, total, price["currency"]) if cpn else 0
    return {
        "product_name": product["name"] if product else price["product"],
        "amount": format_amount(total, price["currency"]),
        "due_today": format_amount(0 if trial_days else total - off, price["currency"]),
        "discount_text": _discount_text(cpn, promo, price["currency"]) if cpn else None,
        "allow_promotion_codes": bool(session.get("allow_promotion_codes")) and not discounts,
        "card_optional": bool(trial_days) and session.get("payment_method_collection") == "if_required",
        "interval_text": interval_text(price),
        "trial_days": trial_days,
        "email": email,
        "email_locked": bool(email),
        "cancel_url": session.get("cancel_url"),
        "action": f"/c/pay/{session['id']}",
    }


def _discount_text(cpn: JSON, promo: JSON | None, currency: str) -> str:
    if cpn.get("percent_off") is not None:
        what = f"{float(cpn['percent_off']):g}% off"
    else:
        what = f"{format_amount(int(cpn['amount_off']), str(cpn['currency']))} off"
    when = {
        "once": "the first payment",
        "forever": "every payment",
        "repeating": f"{cpn.get('duration_in_months')} months",
    }[str(cpn["duration"])]
    label = promo["code"] if promo else (cpn.get("name") or cpn["id"])
    return f"{label}: {what} {when}"


def _closed_page(session: JSON) -> HTMLResponse:
    if session["status"] == "complete":
        link = (session.get("success_url") or "").replace("{CHECKOUT_SESSION_ID}", session["id"])
        return render(
            "message.html",
            heading="Payment complete",
            text="This Checkout Session is complete.",
            link=link or None,
            link_text="Continue",
        )
    return render(
        "message.html",
        status=410,
        heading="Session expired",
        text="This Checkout Session has expired.",
        link=session.get("cancel_url"),
        link_text="Go back",
    )


async def checkout_page(request: Request) -> Response:
    store = _store(request)
    session = store.get("checkout.session", request.path_params["id"])
    if session is None:
        return render("message.html", status=404, heading="Not found", text="No such Checkout Session.")
    if session["status"] != "open":
        return _closed_page(session)
    return render("checkout.html", **_checkout_context(store, session))


async def checkout_submit(request: Request) -> Response:
    store = _store(request)
    session = store.get("checkout.session", request.path_params["id"])
    if session is None:
        return render("message.html", status=404, heading="Not found", text="No such Checkout Session.")
    if session["status"] != "open":
        return _closed_page(session)
    form = await request.form()
    fields = {k: str(form.get(k) or "") for k in ("email", "cardnumber", "exp", "cvc", "name", "promotion_code")}
    if fields["promotion_code"].strip() and not session.get("discounts"):
        refused = cp.apply_code_to_session(store, session, fields["promotion_code"])
        store.save()
        context = _checkout_context(store, session)
        context.update(card_number=fields["cardnumber"], exp=fields["exp"], name=fields["name"])
        if refused:
            context.update(promotion_error=refused, promotion_code=fields["promotion_code"])
            return render("checkout.html", status=400, **context)
        if form.get("action") == "apply":
            return render("checkout.html", **context)
    context = _checkout_context(store, session)
    now = datetime.fromtimestamp(store.now(), UTC)
    card: JSON | None = None
    try:
        email = context["email"] or fields["email"].strip()
        if not email or "@" not in email:
            raise CardError("Your email address is invalid.", code="email_invalid")
        if not (context["card_optional"] and not fields["cardnumber"].strip()):
            card = parse_card(fields["cardnumber"], fields["exp"], fields["cvc"], now.year, now.month)
            error = charge_error(card["number"])
            if error is not None:
                raise error
    except CardError as exc:
        context.update(error=exc.message, card_number=fields["cardnumber"], exp=fields["exp"], name=fields["name"])
        if not context["email_locked"]:
            context["email"] = fields["email"]
        return render("checkout.html", status=402, **context)
    complete_checkout(store, session, card, email)
    store.save()
    target = (session.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", session["id"])
    return RedirectResponse(target, status_code=303)


def _portal_invoices(store: Store, customer_id: str) -> list[dict[str, Any]]:
    """The customer's finalized invoices, newest first (the portal's invoice history)."""
    return [
        {
            "number": inv.get("number") or inv["id"],
            "date": format_date(int(inv.get("created") or 0)),
            "amount": format_amount(int(inv.get("total") or 0), str(inv.get("currency") or "usd")),
            "status": str(inv.get("status") or "").replace("_", " "),
        }
        for inv in store.all("invoice")
        if inv.get("customer") == customer_id and inv.get("status") not in (None, "draft")
    ]


def _portal_context(store: Store, portal: JSON) -> dict[str, Any]:
    cust = store.get("customer", portal["customer"])
    assert cust is not None
    features = features_of(store, portal)
    can_cancel = bool(features["subscription_cancel"]["enabled"])
    subs = []
    for sub in store.all("subscription"):
        if sub["customer"] != cust["id"] or sub["status"] in ("canceled", "incomplete_expired", "incomplete"):
            continue
        price = sub["items"]["data"][0]["price"]
        product = store.get("product", price["product"])
        end = current_period(sub)[1]
        if sub.get("cancel_at"):
            period_text = f"Your plan will be canceled on {format_date(int(sub['cancel_at']))}."
        elif sub["status"] == "trialing":
            period_text = f"Trial ends on {format_date(end)}."
        else:
            period_text = f"Renews on {format_date(end)}."
        base = f"/p/session/{portal['id']}/subscriptions/{sub['id']}"
        subs.append(
            {
                "product_name": product["name"] if product else price["product"],
                "amount": format_amount(
                    int(price["unit_amount"]) * int(sub["items"]["data"][0]["quantity"]), price["currency"]
                ),
                "interval_text": interval_text(price),
                "status": sub["status"].replace("_", " "),
                "period_text": period_text,
                "can_cancel": can_cancel and not sub.get("cancel_at"),
                "can_resume": can_cancel and bool(sub.get("cancel_at")),
                "cancel_action": f"{base}/cancel",
                "resume_action": f"{base}/resume",
            }
        )
    pm = default_payment_method(store, cust)
    card_text = (
        f"{pm['card']['brand'].title()} •••• {pm['card']['last4']}, expires "
        f"{pm['card']['exp_month']:02d}/{pm['card']['exp_year']}"
        if pm
        else "No card on file."
    )
    return_url = portal.get("return_url")
    return {
        "customer": cust,
        "can_update_card": bool(features["payment_method_update"]["enabled"]),
        "invoices": _portal_invoices(store, cust["id"]) if features["invoice_history"]["enabled"] else None,
        "subscriptions": subs,
        "card_text": card_text,
        "card_action": f"/p/session/{portal['id']}/payment_method",
        "return_url": return_url,
        "return_host": urlsplit(return_url).netloc if return_url else "",
    }


async def portal_page(request: Request) -> Response:
    store = _store(request)
    portal = store.get("billing_portal.session", request.path_params["id"])
    if portal is None:
        return render("message.html", status=404, heading="Not found", text="No such portal session.")
    notice = {
        "canceled": "Your plan has been canceled.",
        "resumed": "Your plan has been renewed.",
        "card": "Your payment method has been updated.",
    }.get(request.query_params.get("done", ""))
    return render("portal.html", notice=notice, **_portal_context(store, portal))


async def portal_action(request: Request) -> Response:
    store = _store(request)
    portal = store.get("billing_portal.session", request.path_params["id"])
    if portal is None:
        return render("message.html", status=404, heading="Not found", text="No such portal session.")
    action = request.path_params["action"]
    back = f"/p/session/{portal['id']}"
    features = features_of(store, portal)
    offered = features["payment_method_update" if action == "payment_method" else "subscription_cancel"]["enabled"]
    if not offered:
        # the portal's configuration does not offer this: Stripe's portal has no such page either
        return render("message.html", status=404, heading="Not found", text="No such page.")
    if action == "payment_method":
        form = await request.form()
        now = datetime.fromtimestamp(store.now(), UTC)
        try:
            card = parse_card(
                str(form.get("cardnumber") or ""),
                str(form.get("exp") or ""),
                str(form.get("cvc") or ""),
                now.year,
                now.month,
            )
        except CardError as exc:
            return render("portal.html", status=402, error=exc.message, **_portal_context(store, portal))
        cust = store.get("customer", portal["customer"])
        assert cust is not None
        update_card(store, cust, card)
        store.save()
        return RedirectResponse(f"{back}?done=card", status_code=303)
    if action not in ("cancel", "resume"):
        return render("message.html", status=404, heading="Not found", text="No such page.")
    sub = store.get("subscription", request.path_params.get("sub", ""))
    if sub is None or sub["customer"] != portal["customer"] or sub["status"] in ("canceled", "incomplete"):
        return render("message.html", status=404, heading="Not found", text="No such subscription.")
    previous = {
        "cancel_at_period_end": sub["cancel_at_period_end"],
        "cancel_at": sub["cancel_at"],
        "canceled_at": sub["canceled_at"],
        "cancellation_details": dict(sub["cancellation_details"]),
    }
    if action == "cancel" and not sub.get("cancel_at"):
        sub.update(cancel_at_period_end=True, cancel_at=current_period(sub)[1], canceled_at=store.now())
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        store.emit("customer.subscription.updated", sub, previous)
    elif action == "resume" and sub.get("cancel_at"):
        sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
        sub["cancellation_details"]["reason"] = None
        store.emit("customer.subscription.updated", sub, previous)
    store.save()
    return RedirectResponse(f"{back}?done={'canceled' if action == 'cancel' else 'resumed'}", status_code=303)


ROUTES = [
    Route("/c/pay/{id}", checkout_page, methods=["GET"]),
    Route("/c/pay/{id}", checkout_submit, methods=["POST"]),
    Route("/p/session/{id}", portal_page, methods=["GET"]),
    Route("/p/session/{id}/subscriptions/{sub}/{action:str}", portal_action, methods=["POST"]),
    Route("/p/session/{id}/{action:str}", portal_action, methods=["POST"]),
]
