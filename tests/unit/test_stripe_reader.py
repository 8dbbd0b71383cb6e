"""The reader of Stripe objects, on real-shaped payloads: the pinned version's (Stripe's own fixtures3.json examples,
with ids and times of ours put in) and the last pre-basil version's, 2025-02-24.acacia (built from Stripe's changelog:
basil removed `invoice.charge`, `invoice.payment_intent`, `invoice.paid`, `invoice.subscription`, `charge.invoice`
and the subscription-level `current_period_*`; 2025-07-30.basil added the `cancel_at` enums)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from payment.stripe import reader
from payment.stripe.version import API_VERSION, PRE_BASIL_VERSION
from tests.support.shared import stripe_fixtures

JAN_31 = int(datetime(2027, 1, 31, 9, tzinfo=UTC).timestamp())
FEB_28 = int(datetime(2027, 2, 28, 9, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def fixtures() -> dict[str, Any]:
    return stripe_fixtures()


def _pinned(fixtures: dict[str, Any], kind: str) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(fixtures[kind])
    return obj


def pinned_subscription(fixtures: dict[str, Any], **changes: Any) -> dict[str, Any]:
    sub = _pinned(fixtures, "subscription")
    item = sub["items"]["data"][0]
    item.update(current_period_start=JAN_31, current_period_end=FEB_28)
    item["price"]["id"] = "price_pro"
    sub.update(
        id="sub_pinned",
        status="active",
        cancel_at=None,
        cancel_at_period_end=False,
        canceled_at=None,
        ended_at=None,
        trial_end=None,
        customer="cus_pinned",
        metadata={"customer_id": "7", "plan_id": "3"},
    )
    sub.update(changes)
    return sub


def acacia_subscription(**changes: Any) -> dict[str, Any]:
    sub = {
        "id": "sub_acacia",
        "object": "subscription",
        "status": "past_due",
        "customer": "cus_acacia",
        "current_period_start": JAN_31,
        "current_period_end": FEB_28,
        "cancel_at": None,
        "cancel_at_period_end": True,
        "canceled_at": JAN_31,
        "ended_at": None,
        "trial_end": None,
        "metadata": {},
        "items": {
            "object": "list",
            "has_more": False,
            "data": [{"id": "si_1", "object": "subscription_item", "price": {"id": "price_pro", "object": "price"}}],
        },
    }
    sub.update(changes)
    return sub


def pinned_invoice(fixtures: dict[str, Any], *, expand_payments: bool = True) -> dict[str, Any]:
    inv = _pinned(fixtures, "invoice")
    inv.pop("subscription", None)  # fixtures3.json still shows it; the pinned version has no such field
    inv.update(
        id="in_pinned",
        status="paid",
        currency="thb",
        amount_paid=29900,
        amount_due=29900,
        attempt_count=1,
        customer="cus_pinned",
        status_transitions={
            "paid_at": FEB_28,
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "voided_at": None,
        },
    )
    inv["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": "sub_pinned"},
    }
    inv["lines"]["data"][0]["period"] = {"start": JAN_31, "end": FEB_28}
    if expand_payments:
        payment = _pinned(fixtures, "invoice_payment")
        payment.update(
            id="inpay_1",
            invoice="in_pinned",
            status="paid",
            is_default=True,
            payment={"type": "payment_intent", "payment_intent": "pi_pinned"},
        )
        inv["payments"] = {"object": "list", "data": [payment], "has_more": False, "url": "/v1/invoice_payments"}
    return inv


def acacia_invoice(**changes: Any) -> dict[str, Any]:
    inv = {
        "id": "in_acacia",
        "object": "invoice",
        "status": "paid",
        "paid": True,
        "currency": "usd",
        "amount_paid": 1000,
        "amount_due": 1000,
        "attempt_count": 1,
        "customer": "cus_acacia",
        "subscription": "sub_acacia",
        "charge": "ch_acacia",
        "payment_intent": "pi_acacia",
        "period_start": 1,
        "period_end": 2,
        "status_transitions": {"paid_at": FEB_28},
        "lines": {
            "object": "list",
            "has_more": False,
            "data": [{"id": "il_1", "object": "line_item", "period": {"start": JAN_31, "end": FEB_28}}],
        },
    }
    inv.update(changes)
    return inv


def test_pinned_subscription_reads_its_period_from_the_items(fixtures: dict[str, Any]) -> None:
    sub = pinned_subscription(fixtures)
    assert "current_period_end" not in sub  # the pinned version has it on the items only
    state = reader.subscription(sub)
    assert (state.id, state.status, state.price_id) == ("sub_pinned", "active", "price_pro")
    assert (state.period_start, state.period_end) == (reader.ts(JAN_31), reader.ts(FEB_28))
    assert (state.stripe_customer_id, state.our_customer_id, state.our_plan_id) == ("cus_pinned", 7, 3)
    assert (state.cancel_at_period_end, state.cancel_at) == (False, None)


def test_pinned_subscription_cancel_at_without_cancel_at_period_end(fixtures: dict[str, Any]) -> None:
    # what `cancel_at=min_period_end` gives since 2025-07-30.basil: a timestamp, with cancel_at_period_end false
    state = reader.subscription(pinned_subscription(fixtures, cancel_at=FEB_28, canceled_at=JAN_31))
    assert (state.cancel_at_period_end, state.cancel_at) == (False, reader.ts(FEB_28))


def test_acacia_subscription_reads_its_period_from_the_subscription() -> None:
    state = reader.subscription(acacia_subscription())
    assert (state.period_start, state.period_end) == (reader.ts(JAN_31), reader.ts(FEB_28))
    assert (state.status, state.cancel_at_period_end, state.canceled_at) == ("past_due", True, reader.ts(JAN_31))


def test_pinned_invoice_names_its_subscription_in_parent_and_its_payment_in_invoice_payments(
    fixtures: dict[str, Any],
) -> None:
    inv = pinned_invoice(fixtures)
    assert not {"charge", "payment_intent", "paid", "subscription"} & set(inv)
    state = reader.invoice(inv)
    assert (state.subscription_id, state.status, state.currency, state.amount_paid) == (
        "sub_pinned",
        "paid",
        "thb",
        29900,
    )
    assert (state.period_start, state.period_end, state.paid_at) == (
        reader.ts(JAN_31),
        reader.ts(FEB_28),
        reader.ts(FEB_28),
    )
    assert reader.payment_ids(inv) == reader.PaymentIds(None, "pi_pinned")


def test_pinned_invoice_without_expansion_takes_the_listed_invoice_payments(fixtures: dict[str, Any]) -> None:
    inv = pinned_invoice(fixtures, expand_payments=False)
    assert reader.payment_ids(inv) == reader.PaymentIds(None, None)
    failed = {
        "id": "inpay_old",
        "invoice": "in_pinned",
        "status": "failed",
        "is_default": False,
        "created": 1,
        "payment": {"type": "payment_intent", "payment_intent": "pi_failed"},
    }
    paid = {
        "id": "inpay_new",
        "invoice": "in_pinned",
        "status": "paid",
        "is_default": True,
        "created": 2,
        "payment": {"type": "charge", "charge": "ch_paid"},
    }
    assert reader.payment_ids(inv, [failed, paid]) == reader.PaymentIds("ch_paid", None)
    assert reader.invoice_payment_invoice_id(paid) == "in_pinned"


def test_acacia_invoice_names_its_payment_and_subscription_itself() -> None:
    inv = acacia_invoice()
    state = reader.invoice(inv)
    assert (state.subscription_id, state.period_end) == ("sub_acacia", reader.ts(FEB_28))
    assert reader.payment_ids(inv) == reader.PaymentIds("ch_acacia", "pi_acacia")


def test_an_open_invoice_already_attempted_is_a_failed_payment(fixtures: dict[str, Any]) -> None:
    inv = pinned_invoice(fixtures)
    inv.update(status="open", amount_paid=0, attempt_count=1)
    assert reader.invoice(inv).status == "payment_failed"
    assert reader.invoice(acacia_invoice(status="open", paid=False, attempt_count=0)).status == "open"


def test_stripes_next_retry_of_a_failed_invoice_and_none_when_no_retry_is_scheduled(fixtures: dict[str, Any]) -> None:
    inv = pinned_invoice(fixtures)
    inv.update(status="open", amount_paid=0, attempt_count=1, next_payment_attempt=FEB_28)
    assert reader.invoice(inv).next_payment_attempt == datetime(2027, 2, 28, 9, tzinfo=UTC)
    inv.update(next_payment_attempt=None)
    assert reader.invoice(inv).next_payment_attempt is None
    assert reader.invoice(acacia_invoice(next_payment_attempt=JAN_31)).next_payment_attempt is not None


def test_the_declined_card_and_the_customers_default_card(fixtures: dict[str, Any]) -> None:
    intent = _pinned(fixtures, "payment_intent")
    # after a decline Stripe clears payment_method and names the card in last_payment_error
    intent.update(payment_method=None, last_payment_error={"type": "card_error", "payment_method": {"id": "pm_old"}})
    assert reader.failed_payment_method_id(intent) == "pm_old"
    customer = _pinned(fixtures, "customer")
    customer["invoice_settings"] = {"default_payment_method": "pm_new", "custom_fields": None, "footer": None}
    assert reader.customer_payment_method_id(customer) == "pm_new"
    customer["invoice_settings"]["default_payment_method"] = None
    assert reader.customer_payment_method_id(customer) is None


def test_decline_message_from_the_payment_intent_or_the_charge(fixtures: dict[str, Any]) -> None:
    intent = _pinned(fixtures, "payment_intent")
    intent["last_payment_error"] = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
    assert reader.decline_message(intent) == "Your card was declined."
    charge = _pinned(fixtures, "charge")
    charge.update(failure_message="Your card has insufficient funds.")
    assert reader.decline_message(charge) == "Your card has insufficient funds."
    intent["last_payment_error"] = None
    assert reader.decline_message(intent) is None


def test_pinned_charge_has_no_invoice_and_refunds_only_when_expanded(fixtures: dict[str, Any]) -> None:
    charge = _pinned(fixtures, "charge")
    charge.pop("refunds", None)  # includable: absent unless expanded
    charge.update(id="ch_pinned", payment_intent="pi_pinned", amount_refunded=5000)
    state = reader.charge(charge)
    assert (state.payment_intent_id, state.invoice_id, state.amount_refunded, state.refunds) == (
        "pi_pinned",
        None,
        5000,
        None,
    )


def test_acacia_charge_names_its_invoice_and_embeds_refunds() -> None:
    refund = {"id": "re_1", "object": "refund", "amount": 1000, "status": "succeeded", "metadata": {}}
    state = reader.charge(
        {
            "id": "ch_acacia",
            "object": "charge",
            "invoice": "in_acacia",
            "payment_intent": None,
            "amount_refunded": 1000,
            "refunds": {"object": "list", "data": [refund], "has_more": False},
        }
    )
    assert (state.invoice_id, state.refunds) == ("in_acacia", [refund])
    paged = reader.charge({"id": "ch_x", "refunds": {"object": "list", "data": [refund], "has_more": True}})
    assert paged.refunds is None  # a partial page is not the whole story: list them


def test_refund_with_our_id_and_a_dashboard_refund(fixtures: dict[str, Any]) -> None:
    ours = _pinned(fixtures, "refund")
    ours.update(
        id="re_ours",
        amount=2500,
        currency="THB",
        metadata={"refund_id": "41", "invoice_id": "9"},
        payment_intent="pi_pinned",
    )
    state = reader.refund(ours)
    assert (state.id, state.amount, state.currency, state.status, state.our_refund_id) == (
        "re_ours",
        2500,
        "thb",
        "succeeded",
        41,
    )
    dashboard = _pinned(fixtures, "refund")
    assert reader.refund(dashboard).our_refund_id is None and reader.refund(dashboard).charge_id


@pytest.mark.parametrize("version", [API_VERSION, PRE_BASIL_VERSION])
def test_event_object_must_be_of_the_expected_type(fixtures: dict[str, Any], version: str) -> None:
    event = _pinned(fixtures, "event")
    event["api_version"] = version
    assert reader.event_api_version(event) == version
    with pytest.raises(reader.UnusableObject, match="is 'plan' where 'invoice' was expected"):
        reader.event_object(event, "invoice")
    assert reader.event_object(event, "plan")["id"] == event["data"]["object"]["id"]
    event["data"] = {}
    with pytest.raises(reader.UnusableObject, match=r"no data\.object"):
        reader.event_object(event, "invoice")


def test_a_subscription_discount_is_read_in_the_pinned_and_the_older_shape(fixtures: dict[str, Any]) -> None:
    coupon = {**_pinned(fixtures, "coupon"), "percent_off": 12.5, "amount_off": None, "duration": "repeating"}
    pinned = _pinned(fixtures, "discount")
    pinned.update(end=FEB_28, source={"type": "coupon", "coupon": coupon})  # expanded `discounts.source.coupon`
    sub = {**_pinned(fixtures, "subscription"), "discounts": [pinned]}
    terms = reader.subscription_discount(sub)
    assert terms is not None and str(terms.percent_off) == "12.5" and terms.amount_off is None
    assert terms.ends_at == datetime(2027, 2, 28, 9, tzinfo=UTC)
    # before 2025-09-30.clover a discount named its coupon directly; pre-basil a subscription had one `discount`
    amount = {**coupon, "percent_off": None, "amount_off": 5000, "currency": "thb", "duration": "forever"}
    legacy = {"id": "di_1", "object": "discount", "coupon": amount, "end": None}
    older = {**_pinned(fixtures, "subscription"), "discounts": [], "discount": legacy}
    terms = reader.subscription_discount(older)
    assert terms is not None and terms.percent_off is None and terms.amount_off == 5000 and terms.ends_at is None
    # discount ids not expanded, or none: no terms (never a guess)
    assert reader.subscription_discount({**sub, "discounts": ["di_123"]}) is None
    assert reader.subscription_discount(_pinned(fixtures, "subscription")) is None


def test_an_invoices_discount_and_a_cards_fingerprint(fixtures: dict[str, Any]) -> None:
    inv = _pinned(fixtures, "invoice")
    inv.update(subtotal=29900, total_discount_amounts=[{"amount": 5980, "discount": "di_1"}], status="paid")
    state = reader.invoice(inv)
    assert (state.subtotal, state.discount) == (29900, 5980)
    assert reader.invoice({**inv, "total_discount_amounts": None}).discount == 0
    pm = _pinned(fixtures, "payment_method")
    assert reader.card_fingerprint(pm) == pm["card"]["fingerprint"]
    assert reader.card_fingerprint({**pm, "card": None}) is None
