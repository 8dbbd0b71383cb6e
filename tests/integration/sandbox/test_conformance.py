"""The sandbox speaks the pinned API version exactly, held against the stripe SDK's types and Stripe's fixtures.

A walk through everything the product does with Stripe (catalog, customer, test clock, Checkout, subscription,
invoices and their payments, a failed renewal, refunds, the portal, `cancel_at`, cancellation), driven with the real
SDK; every response body and every delivered webhook event is checked by `conformance.Checker` (see its docstring
for the rule). The negative tests put back fields Stripe removed and show the checker names them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe.params import PriceCreateParamsRecurring
from stripe.params.checkout import SessionCreateParams

from payment.billing.portal import CARD_AND_INVOICES
from payment.stripe.version import API_VERSION
from tests.support import shared

from .conformance import FIXTURE_STALE, INCLUDABLE, LIST_FIELDS, SDK_CLASSES, Checker, sdk_fields
from .conftest import Sandbox

DAY = 86400
PRODUCT_TYPES = {
    "customer",
    "product",
    "price",
    "checkout.session",
    "subscription",
    "subscription_item",
    "invoice",
    "line_item",
    "invoice_payment",
    "payment_intent",
    "charge",
    "refund",
    "event",
    "billing_portal.session",
    "billing_portal.configuration",
    "test_helpers.test_clock",
    "deleted_test_helpers.test_clock",
    "item",
    "plan",
    "payment_method",
    "coupon",
    "promotion_code",
    "discount",
    "subscription_schedule",
}
Served = list[tuple[str, dict[str, Any], list[str]]]


def raw(obj: stripe.StripeObject) -> dict[str, Any]:
    """The JSON body the sandbox answered, exactly as sent (not the SDK's view of it)."""
    response = obj.last_response
    assert response is not None
    assert response.headers["Stripe-Version"] == API_VERSION
    body: dict[str, Any] = json.loads(response.body)
    return body


def _walk(sbx: Sandbox) -> Served:
    c = sbx.client.v1
    served: Served = []

    def keep(label: str, obj: stripe.StripeObject, expand: list[str] | None = None) -> Any:
        served.append((label, raw(obj), expand or []))
        return obj

    clock = keep("test clock", c.test_helpers.test_clocks.create(params={"frozen_time": sbx.now() + 60}))
    keep("test clock advanced", c.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": sbx.now() + 120}))
    keep("test clocks", c.test_helpers.test_clocks.list())
    product = keep("product", c.products.create(params={"name": "Aquoris Pro"}))
    keep("product retrieved", c.products.retrieve(product.id))
    recurring: PriceCreateParamsRecurring = {"interval": "month"}
    price = keep(
        "price",
        c.prices.create(
            params={"product": product.id, "currency": "thb", "unit_amount": 19900, "recurring": recurring}
        ),
    )
    keep("prices", c.prices.list(params={"product": product.id}))
    customer = keep("customer", c.customers.create(params={"email": "conf@example.com", "test_clock": clock.id}))
    keep("customers", c.customers.list(params={"email": "conf@example.com"}))
    session_params: SessionCreateParams = {
        "mode": "subscription",
        "customer": customer.id,
        "success_url": "http://app.test/ok?s={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://app.test/no",
        "line_items": [{"price": price.id, "quantity": 1}],
        "metadata": {"user_id": "7"},
        "subscription_data": {"metadata": {"user_id": "7"}},
    }
    session = keep("checkout session", c.checkout.sessions.create(params=session_params))
    keep("checkout line items", c.checkout.sessions.line_items.list(session.id))
    guest_params = session_params.copy()
    del guest_params["customer"]
    guest_params["customer_email"] = "x@example.com"
    other = c.checkout.sessions.create(params=guest_params)
    keep("checkout session expired", c.checkout.sessions.expire(other.id))
    assert sbx.pay(session.id)["status_code"] == 200
    expand = ["subscription", "invoice"]
    session = keep("checkout session paid", c.checkout.sessions.retrieve(session.id, params={"expand": expand}), expand)
    keep("checkout sessions", c.checkout.sessions.list(params={"customer": customer.id}))
    sub_id = session.subscription.id
    expand = ["latest_invoice", "items.data.price"]
    sub = keep("subscription", c.subscriptions.retrieve(sub_id, params={"expand": expand}), expand)
    invoice_id = sub.latest_invoice.id
    items = keep("subscription items", c.subscription_items.list(params={"subscription": sub_id}))
    keep("subscription item", c.subscription_items.retrieve(items.data[0].id))
    assert sub.test_clock == sub.latest_invoice.test_clock == customer.test_clock == clock.id
    keep("invoice", c.invoices.retrieve(invoice_id))
    expand = ["payments", "payments.data.payment.payment_intent"]
    keep("invoice with payments", c.invoices.retrieve(invoice_id, params={"expand": expand}), expand)
    keep("invoices", c.invoices.list(params={"subscription": sub_id}))
    keep("invoice lines", c.invoices.line_items.list(invoice_id))
    payments = keep("invoice payments", c.invoice_payments.list(params={"invoice": invoice_id}))
    keep("invoice payment", c.invoice_payments.retrieve(payments.data[0].id))
    pi_id = payments.data[0].payment.payment_intent
    pi = keep("payment intent", c.payment_intents.retrieve(pi_id))
    keep("charge", c.charges.retrieve(pi.latest_charge))
    keep("payment method", c.payment_methods.retrieve(sub.default_payment_method))
    refund = keep("refund", c.refunds.create(params={"payment_intent": pi_id, "amount": 5000, "metadata": {"r": "1"}}))
    keep("refund retrieved", c.refunds.retrieve(refund.id))
    keep("refunds", c.refunds.list(params={"charge": refund.charge}))
    keep("charge with refunds", c.charges.retrieve(refund.charge, params={"expand": ["refunds"]}), ["refunds"])
    keep("portal session", c.billing_portal.sessions.create(params={"customer": customer.id}))
    _walk_portal_configurations(keep, c, customer.id)
    _walk_plan_changes(sbx, keep, sub, product.id)

    sbx.set_card(customer.id, "4000000000000341")  # attaches, then every charge on it is declined
    dearer = c.prices.create(
        params={"product": product.id, "currency": "thb", "unit_amount": 99900, "recurring": recurring}
    )
    item = c.subscriptions.retrieve(sub_id)["items"].data[0]
    keep(
        "subscription pending update",
        c.subscriptions.update(
            sub_id,
            params={
                "items": [{"id": item.id, "price": dearer.id}],
                "proration_behavior": "always_invoice",
                "payment_behavior": "pending_if_incomplete",
            },
        ),
    )
    pending = c.subscriptions.retrieve(sub_id)
    keep("invoice voided", c.invoices.void_invoice(str(pending.latest_invoice)))
    sbx.advance(sub["items"].data[0].current_period_end - sbx.now() + 60)
    expand = ["latest_invoice.payments.data.payment.payment_intent.latest_charge"]
    past_due = keep("subscription past due", c.subscriptions.retrieve(sub_id, params={"expand": expand}), expand)
    # behind the service's back, as in Stripe's Dashboard (reconciliation's drifts): same shapes as the API's
    sbx.control("POST", f"invoices/{past_due.latest_invoice.id}/mark_uncollectible")
    keep("invoice marked uncollectible", c.invoices.retrieve(past_due.latest_invoice.id))
    sbx.set_card(customer.id, "4242424242424242")
    made = sbx.control("POST", f"customers/{customer.id}/dashboard_subscription", data={"price": price.id})
    keep("subscription made in the Dashboard", c.subscriptions.retrieve(made["subscription"]["id"]))
    sbx.control("POST", f"subscriptions/{made['subscription']['id']}/dashboard_cancel", data={"at_period_end": "true"})
    keep("subscription canceled in the Dashboard", c.subscriptions.retrieve(made["subscription"]["id"]))
    sbx.set_card(customer.id, "4242424242424242")  # the portal's card update; we retry the invoice at once
    settings = c.customers.retrieve(customer.id).invoice_settings
    assert settings is not None and isinstance(settings.default_payment_method, str)
    card = settings.default_payment_method
    keep("invoice paid now", c.invoices.pay(past_due.latest_invoice.id, params={"payment_method": card}))
    keep(
        "subscription cancel_at",
        c.subscriptions.update(sub_id, params={"cancel_at": "max_period_end"}),
    )
    keep("subscription canceled", c.subscriptions.cancel(sub_id))
    keep("subscriptions", c.subscriptions.list(params={"customer": customer.id, "status": "all"}))
    keep("events", c.events.list(params={"limit": 100}))
    keep("event", c.events.retrieve(c.events.list(params={"limit": 1}).data[0].id))
    _walk_discounts_and_trials(sbx, keep, price.id)
    keep("test clock deleted", c.test_helpers.test_clocks.delete(clock.id))
    sbx.flush()
    for request in sbx.receiver.requests:
        event = json.loads(request["body"])
        served.append((f"webhook {event['type']}", event, []))
    return served


def _walk_portal_configurations(keep: Any, c: Any, customer_id: str) -> None:
    """A card-and-invoices portal configuration (the product's), found again by its metadata, and a session on it."""
    conf = keep(
        "portal configuration",
        c.billing_portal.configurations.create(
            params={
                "features": CARD_AND_INVOICES["features"],
                "metadata": {"aquoris_portal": "conformance"},
            },
            options={"idempotency_key": "conformance-portal-configuration"},
        ),
    )
    listed = keep("portal configurations", c.billing_portal.configurations.list(params={"active": True, "limit": 1}))
    assert listed.has_more and listed.data[0].id == conf.id
    assert listed.data[0].metadata.to_dict() == {"aquoris_portal": "conformance"}
    rest = keep(
        "portal configurations, next page",
        c.billing_portal.configurations.list(params={"limit": 100, "starting_after": conf.id}),
    )
    assert [x.is_default for x in rest.data] == [True]
    keep("portal configuration retrieved", c.billing_portal.configurations.retrieve(conf.id))
    keep(
        "portal configuration updated",
        c.billing_portal.configurations.update(conf.id, params={"default_return_url": "http://app.test/billing"}),
    )
    session = keep(
        "portal session on a configuration",
        c.billing_portal.sessions.create(params={"customer": customer_id, "configuration": conf.id}),
    )
    assert session.configuration == conf.id and session.return_url == "http://app.test/billing"


def _walk_discounts_and_trials(sbx: Sandbox, keep: Any, price_id: str) -> None:
    """Coupons, promotion codes, a discounted Checkout and its invoice, and a card-less trial that pauses."""
    c = sbx.client.v1
    percent = keep(
        "coupon",
        c.coupons.create(params={"percent_off": 20, "duration": "repeating", "duration_in_months": 3, "name": "20%"}),
    )
    keep("coupon amount", c.coupons.create(params={"amount_off": 5000, "currency": "thb", "duration": "once"}))
    keep("coupon retrieved", c.coupons.retrieve(percent.id))
    keep("coupons", c.coupons.list())
    promo = keep(
        "promotion code",
        c.promotion_codes.create(
            params={"promotion": {"type": "coupon", "coupon": percent.id}, "code": "SPRING20", "max_redemptions": 5}
        ),
    )
    keep("promotion codes", c.promotion_codes.list(params={"code": "SPRING20"}))
    customer = c.customers.create(params={"email": "promo@example.com"})
    base: SessionCreateParams = {
        "mode": "subscription",
        "customer": customer.id,
        "success_url": "http://app.test/ok",
        "line_items": [{"price": price_id, "quantity": 1}],
    }
    keep("checkout session with a code", c.checkout.sessions.create(params={**base, "allow_promotion_codes": True}))
    session = c.checkout.sessions.create(params={**base, "discounts": [{"promotion_code": promo.id}]})
    assert sbx.pay(session.id)["status_code"] == 200
    session = keep("checkout session discounted", c.checkout.sessions.retrieve(session.id))
    keep("checkout discounted line items", c.checkout.sessions.line_items.list(session.id))
    expand = ["discounts", "latest_invoice"]
    sub = keep(
        "subscription discounted",
        c.subscriptions.retrieve(str(session.subscription), params={"expand": expand}),
        expand,
    )
    keep("promotion code redeemed", c.promotion_codes.retrieve(promo.id))
    keep("promotion code deactivated", c.promotion_codes.update(promo.id, params={"active": False}))
    expand = ["discounts", "total_discount_amounts.discount"]
    keep("invoice discounted", c.invoices.retrieve(sub.latest_invoice.id, params={"expand": expand}), expand)

    cardless = c.customers.create(params={"email": "trial@example.com"})
    trial_params: SessionCreateParams = {
        **base,
        "customer": cardless.id,
        "payment_method_collection": "if_required",
        "subscription_data": {
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        },
    }
    trial = c.checkout.sessions.create(params=trial_params)
    assert sbx.pay(trial.id, card="none")["status_code"] == 200
    trial_sub = keep(
        "subscription trialing", c.subscriptions.retrieve(str(c.checkout.sessions.retrieve(trial.id).subscription))
    )
    sbx.advance(present(trial_sub.trial_end) - sbx.now() + 60)
    paused = keep("subscription paused", c.subscriptions.retrieve(trial_sub.id))
    assert paused.status == "paused"


def present(value: int | None) -> int:
    assert value is not None
    return value


def _walk_plan_changes(sbx: Sandbox, keep: Any, sub: stripe.Subscription, product_id: str) -> None:
    """An upgrade with its preview, a downgrade scheduled for the period end, the schedule listed and released."""
    c = sbx.client.v1
    recurring: PriceCreateParamsRecurring = {"interval": "month"}
    params: Any = {"product": product_id, "currency": "thb", "unit_amount": 29900, "recurring": recurring}
    bigger = c.prices.create(params=params)
    item = sub["items"].data[0]
    change: Any = {"items": [{"id": item.id, "price": bigger.id}], "proration_behavior": "always_invoice"}
    keep("invoice preview", c.invoices.create_preview(params={"subscription": sub.id, "subscription_details": change}))
    keep("invoice preview of the renewal", c.invoices.create_preview(params={"subscription": sub.id}))
    upgrade: Any = {**change, "payment_behavior": "pending_if_incomplete"}
    upgraded = c.subscriptions.update(sub.id, params=upgrade)
    keep("subscription upgraded", upgraded)
    keep("proration invoice", c.invoices.retrieve(str(upgraded.latest_invoice)))
    schedule = keep("subscription schedule", c.subscription_schedules.create(params={"from_subscription": sub.id}))
    phase = schedule.phases[0]
    phases: Any = [
        {"items": [{"price": bigger.id}], "start_date": phase.start_date, "end_date": phase.end_date},
        {"items": [{"price": item.price.id}], "iterations": 1},
    ]
    keep("subscription schedule updated", c.subscription_schedules.update(schedule.id, params={"phases": phases}))
    keep("subscription schedules", c.subscription_schedules.list(params={"customer": str(sub.customer)}))
    keep("subscription with schedule", c.subscriptions.retrieve(sub.id))
    keep("subscription schedule released", c.subscription_schedules.release(schedule.id))


@pytest.fixture(scope="module")
def walk(emulator: Sandbox) -> Iterator[Served]:
    fixtures = shared.stripe_fixtures()  # skip early (or fail under CI) without the authority
    assert fixtures
    emulator.control("POST", "reset")
    with emulator.receiver.lock:
        emulator.receiver.requests.clear()
    yield _walk(emulator)


@pytest.fixture(scope="module")
def stripe_fixtures() -> dict[str, Any]:
    return shared.stripe_fixtures()


def test_every_served_object_has_exactly_the_pinned_versions_fields(
    walk: Served, stripe_fixtures: dict[str, Any]
) -> None:
    checker = Checker(stripe_fixtures)
    for label, body, expand in walk:
        checker.check(body, expand, where=label)
    assert checker.problems == [], "\n".join(checker.problems)
    assert checker.seen >= PRODUCT_TYPES, f"never served: {sorted(PRODUCT_TYPES - checker.seen)}"


def test_webhook_events_carry_the_pinned_version(walk: Served) -> None:
    events = [body for label, body, _ in walk if label.startswith("webhook ")]
    assert len(events) > 30
    assert {e["api_version"] for e in events} == {API_VERSION}
    assert {
        "invoice.payment_failed",
        "refund.updated",
        "charge.refunded",
        "invoice_payment.paid",
        "customer.subscription.deleted",
        "customer.subscription.trial_will_end",
        "customer.subscription.paused",
    } <= {e["type"] for e in events}


def test_fixture_and_sdk_disagree_only_where_documented(stripe_fixtures: dict[str, Any]) -> None:
    """fixtures3.json lags the SDK on removed fields; every such disagreement is listed, none is silently skipped."""
    stale = {
        kind: frozenset(set(stripe_fixtures[kind]) - sdk_fields(cls))
        for kind, cls in SDK_CLASSES.items()
        if set(stripe_fixtures[kind]) - sdk_fields(cls)
    }
    assert stale == FIXTURE_STALE
    assert set(stripe_fixtures["invoice"]["lines"]) == set(stripe_fixtures["subscription"]["items"]) == LIST_FIELDS
    for kind, fields in INCLUDABLE.items():
        assert fields <= sdk_fields(SDK_CLASSES[kind]), kind


def _served(walk: Served, label: str) -> tuple[dict[str, Any], list[str]]:
    body, expand = next((b, e) for lab, b, e in walk if lab == label)
    return copy.deepcopy(body), expand


GONE = "(not a field of the pinned version)"
INCLUDABLE_ONLY = "(includable: only when expand[] names it)"
EMPTY_LIST = {"object": "list", "data": [], "has_more": False, "url": "/v1/x"}
REMOVED = [
    # (served object, field put back, value, why the checker refuses it)
    ("invoice", "charge", "ch_123", GONE),  # removed in 2025-03-31.basil
    ("invoice", "payment_intent", "pi_123", GONE),  # removed in 2025-03-31.basil
    ("invoice", "paid", True, GONE),  # removed in 2025-03-31.basil
    ("invoice", "subscription", "sub_123", GONE),  # now parent.subscription_details.subscription
    ("subscription", "current_period_end", 1, GONE),  # now on subscription items
    ("subscription", "current_period_start", 1, GONE),
    ("payment intent", "charges", EMPTY_LIST, GONE),  # removed in 2022-11-15
    ("charge", "refunds", EMPTY_LIST, INCLUDABLE_ONLY),  # includable since 2022-11-15
    ("invoice", "payments", EMPTY_LIST, INCLUDABLE_ONLY),
]


@pytest.mark.parametrize(("label", "field", "value", "why"), REMOVED, ids=[f"{r[0]}.{r[1]}" for r in REMOVED])
def test_a_removed_field_put_back_is_reported(
    walk: Served, stripe_fixtures: dict[str, Any], label: str, field: str, value: Any, why: str
) -> None:
    body, expand = _served(walk, label)
    assert Checker(stripe_fixtures).check(body, expand, where=label) == []
    body[field] = value
    problems = Checker(stripe_fixtures).check(body, expand, where=label)
    assert problems == [f"{label} ({body['object']}): extra field {field!r} {why}"]


def test_an_optional_field_stripe_returns_only_in_some_cases_is_reported(
    walk: Served, stripe_fixtures: dict[str, Any]
) -> None:
    body, expand = _served(walk, "customer")
    body["customer_account"] = None
    assert Checker(stripe_fixtures).check(body, expand, where="customer") == [
        "customer (customer): extra field 'customer_account' (Stripe returns it only in cases we do not emulate)"
    ]


def test_a_field_missing_or_a_sub_object_field_added_is_reported(walk: Served, stripe_fixtures: dict[str, Any]) -> None:
    body, expand = _served(walk, "invoice")
    del body["parent"]
    body["lines"]["data"][0]["subscription_item"] = "si_123"  # removed from line items in 2025-03-31.basil
    body["status_transitions"]["paid"] = True
    assert Checker(stripe_fixtures).check(body, expand, where="invoice") == [
        "invoice (invoice): missing field 'parent'",
        "invoice.lines.data[0] (line_item): extra field 'subscription_item' (not a field of the pinned version)",
        "invoice.status_transitions: extra field 'paid' (not a field of the pinned version)",
    ]


def test_an_includable_field_is_accepted_only_when_expand_named_it(
    walk: Served, stripe_fixtures: dict[str, Any]
) -> None:
    body, expand = _served(walk, "invoice with payments")
    assert "payments" in body and Checker(stripe_fixtures).check(body, expand, where="invoice") == []
    assert Checker(stripe_fixtures).check(body, [], where="invoice") == [
        f"invoice (invoice): extra field 'payments' {INCLUDABLE_ONLY}"
    ]
    body, _ = _served(walk, "charge")
    assert Checker(stripe_fixtures).check(body, ["refunds"], where="charge") == [
        "charge (charge): missing field 'refunds'"
    ]
