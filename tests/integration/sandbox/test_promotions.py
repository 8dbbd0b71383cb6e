"""Coupons, promotion codes and discounts on invoices; trials ending with and without a card."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from stripe.params.checkout import SessionCreateParams

from tests.support.narrow import id_of, present

from .conftest import Sandbox

DAY = 86400
PRICE = 19900


def _session(sbx: Sandbox, email: str, **extra: Any) -> stripe.checkout.Session:
    price = sbx.price(PRICE)
    customer = sbx.client.v1.customers.create(params={"email": email})
    params: SessionCreateParams = {
        "mode": "subscription",
        "customer": customer.id,
        "success_url": "http://app.test/ok",
        "line_items": [{"price": price.id, "quantity": 1}],
    }
    params.update(extra)  # type: ignore[typeddict-item]
    return sbx.client.v1.checkout.sessions.create(params=params)


def _invoice_totals(sbx: Sandbox, sub_id: str) -> list[tuple[int, int, int]]:
    """(subtotal, discount, total) of each invoice of a subscription, oldest first."""
    invoices = sbx.client.v1.invoices.list(params={"subscription": sub_id, "limit": 100}).data
    return [
        (inv.subtotal, sum(d.amount for d in inv.total_discount_amounts or []), inv.total) for inv in reversed(invoices)
    ]


def _renew(sbx: Sandbox, sub_id: str) -> None:
    sub = sbx.client.v1.subscriptions.retrieve(sub_id)
    sbx.advance(sub["items"].data[0].current_period_end - sbx.now() + 60)


@pytest.mark.parametrize(
    ("coupon", "expected"),
    [
        # 20% of 19900 = 3980, for three months (the first invoice and two renewals), then the full price
        (
            {"percent_off": 20, "duration": "repeating", "duration_in_months": 3},
            [(PRICE, 3980, 15920), (PRICE, 3980, 15920), (PRICE, 3980, 15920), (PRICE, 0, PRICE)],
        ),
        # 50.00 THB off the first invoice only
        (
            {"amount_off": 5000, "currency": "thb", "duration": "once"},
            [(PRICE, 5000, 14900), (PRICE, 0, PRICE), (PRICE, 0, PRICE), (PRICE, 0, PRICE)],
        ),
        # 12.5% of 19900 = 2487.5, rounded half up to 2488, on every invoice
        ({"percent_off": 12.5, "duration": "forever"}, [(PRICE, 2488, 17412)] * 4),
    ],
    ids=["percent-repeating", "amount-once", "percent-forever"],
)
def test_each_discount_type_on_the_invoices_it_covers(
    sbx: Sandbox, coupon: dict[str, Any], expected: list[tuple[int, int, int]]
) -> None:
    c = sbx.client.v1
    cpn = c.coupons.create(params=coupon)  # type: ignore[arg-type]
    promo = c.promotion_codes.create(params={"promotion": {"type": "coupon", "coupon": cpn.id}, "code": "SAVE"})
    session = _session(sbx, "d@example.com", allow_promotion_codes=True)
    paid = sbx.http.post(f"/_sandbox/checkout_sessions/{session.id}/pay", data={"promotion_code": "save"})
    assert paid.status_code == 200, paid.text
    session = c.checkout.sessions.retrieve(session.id)
    assert session.total_details is not None and session.total_details.amount_discount == expected[0][1]
    assert session.amount_total == expected[0][2]
    assert [(d.coupon, d.promotion_code) for d in session.discounts or []] == [(cpn.id, promo.id)]
    sub_id = id_of(session.subscription)
    for _ in range(3):
        _renew(sbx, sub_id)
    assert _invoice_totals(sbx, sub_id) == expected
    for inv in c.invoices.list(params={"subscription": sub_id}).data:
        line = inv.lines.data[0]
        assert sum(d.amount for d in line.discount_amounts or []) == inv.subtotal - inv.total
        assert inv.amount_paid == inv.total
    assert c.promotion_codes.retrieve(promo.id).times_redeemed == 1
    assert c.coupons.retrieve(cpn.id).times_redeemed == 1


def test_a_code_past_its_limits_is_refused(sbx: Sandbox) -> None:
    c = sbx.client.v1
    cpn = c.coupons.create(params={"percent_off": 10, "duration": "once"})
    c.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": cpn.id}, "code": "ONCE", "max_redemptions": 1}
    )
    first = _session(sbx, "a@example.com", allow_promotion_codes=True)
    assert sbx.http.post(f"/_sandbox/checkout_sessions/{first.id}/pay", data={"promotion_code": "ONCE"}).is_success
    second = _session(sbx, "b@example.com", allow_promotion_codes=True)
    refused = sbx.http.post(f"/_sandbox/checkout_sessions/{second.id}/pay", data={"promotion_code": "ONCE"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "This code has already been used the maximum number of times."
    expiring = c.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": cpn.id}, "code": "SOON", "expires_at": sbx.now() + DAY}
    )
    sbx.advance(2 * DAY)
    late = _session(sbx, "c@example.com", allow_promotion_codes=True)
    refused = sbx.http.post(f"/_sandbox/checkout_sessions/{late.id}/pay", data={"promotion_code": "SOON"})
    assert refused.json()["error"]["message"] == "This code has expired."
    c.promotion_codes.update(expiring.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError, match="exactly one of `percent_off` or `amount_off`"):
        c.coupons.create(params={"duration": "once"})
    with pytest.raises(stripe.InvalidRequestError, match="allow_promotion_codes, discounts"):
        promo = c.promotion_codes.create(params={"promotion": {"type": "coupon", "coupon": cpn.id}})
        _session(sbx, "d@example.com", allow_promotion_codes=True, discounts=[{"promotion_code": promo.id}])


def test_the_hosted_page_applies_a_code_before_paying(sbx: Sandbox) -> None:
    c = sbx.client.v1
    cpn = c.coupons.create(params={"amount_off": 4900, "currency": "thb", "duration": "forever"})
    c.promotion_codes.create(params={"promotion": {"type": "coupon", "coupon": cpn.id}, "code": "FRIEND"})
    session = _session(sbx, "page@example.com", allow_promotion_codes=True)
    page = sbx.http.post(f"/c/pay/{session.id}", data={"promotion_code": "nope", "action": "apply"})
    assert page.status_code == 400 and "This code is invalid." in page.text
    page = sbx.http.post(f"/c/pay/{session.id}", data={"promotion_code": "FRIEND", "action": "apply"})
    assert page.status_code == 200 and "฿150.00" in page.text and "FRIEND: ฿49.00 off every payment" in page.text
    done = sbx.http.post(
        f"/c/pay/{session.id}", data={"cardnumber": "4242424242424242", "exp": "12/40", "cvc": "123", "action": "pay"}
    )
    assert done.status_code == 303
    sub_id = id_of(c.checkout.sessions.retrieve(session.id).subscription)
    assert _invoice_totals(sbx, sub_id) == [(PRICE, 4900, 15000)]


def _trial(sbx: Sandbox, email: str, behavior: str, card: str) -> stripe.Subscription:
    session = _session(
        sbx,
        email,
        payment_method_collection="if_required",
        subscription_data={
            "trial_period_days": 14,
            "trial_settings": {"end_behavior": {"missing_payment_method": behavior}},
        },
    )
    assert sbx.pay(session.id, card)["status_code"] == 200
    sub_id = id_of(sbx.client.v1.checkout.sessions.retrieve(session.id).subscription)
    return sbx.client.v1.subscriptions.retrieve(sub_id)


def test_trial_will_end_three_days_before_and_a_card_converts_the_trial(sbx: Sandbox) -> None:
    sub = _trial(sbx, "t@example.com", "cancel", "4242424242424242")
    assert sub.status == "trialing" and _invoice_totals(sbx, sub.id) == [(0, 0, 0)]
    end = present(sub.trial_end)
    sbx.advance(end - 3 * DAY - sbx.now() - 60)
    sbx.flush()
    assert "customer.subscription.trial_will_end" not in sbx.receiver.types()
    sbx.advance(120)
    sbx.flush()
    assert sbx.receiver.types().count("customer.subscription.trial_will_end") == 1
    sbx.advance(3 * DAY)
    sub = sbx.client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active"
    assert _invoice_totals(sbx, sub.id) == [(0, 0, 0), (PRICE, 0, PRICE)]
    assert sbx.client.v1.invoices.list(params={"subscription": sub.id}).data[0].status == "paid"


@pytest.mark.parametrize(
    ("behavior", "status", "invoices"),
    [("cancel", "canceled", 1), ("pause", "paused", 1), ("create_invoice", "past_due", 2)],
)
def test_a_trial_without_a_card_ends_as_its_settings_say(
    sbx: Sandbox, behavior: str, status: str, invoices: int
) -> None:
    sub = _trial(sbx, f"{behavior}@example.com", behavior, "none")
    assert sub.status == "trialing" and sub.default_payment_method is None
    sbx.advance(present(sub.trial_end) - sbx.now() + 60)
    sub = sbx.client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == status
    assert len(_invoice_totals(sbx, sub.id)) == invoices
    if status == "paused":
        assert sub.status_details is not None
        assert sub.status_details.paused.subscription.type == "trial_end_without_payment_method"


def test_a_card_is_required_unless_the_session_says_if_required(sbx: Sandbox) -> None:
    session = _session(sbx, "req@example.com", subscription_data={"trial_period_days": 7})
    refused = sbx.pay(session.id, "none")
    assert refused["status_code"] == 402


def test_the_same_card_has_the_same_fingerprint_on_two_customers(sbx: Sandbox) -> None:
    _, one = sbx.subscribe("one@example.com", "4242424242424242")
    _, two = sbx.subscribe("two@example.com", "4242424242424242")
    _, three = sbx.subscribe("three@example.com", "5555555555554444")
    prints = [
        sbx.client.v1.payment_methods.retrieve(str(sub.default_payment_method)).card.fingerprint  # type: ignore[union-attr]
        for sub in (one, two, three)
    ]
    assert prints[0] == prints[1] != prints[2]
