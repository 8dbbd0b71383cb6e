"""Checkout completion, renewals, failed renewals, cancellations, trials and refunds, with webhooks."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.support.narrow import expanded, id_of, present

from .conftest import Sandbox, assert_covers

DAY = 86400
CHECKOUT_EVENTS = [
    "payment_method.attached",
    "customer.updated",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.succeeded",
    "invoice_payment.paid",
    "invoice.paid",
    "invoice.payment_succeeded",
    "customer.subscription.updated",
    "checkout.session.completed",
]
RENEWAL_EVENTS = [
    "invoice.created",
    "invoice.finalized",
    "customer.subscription.updated",
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.succeeded",
    "invoice_payment.paid",
    "invoice.paid",
    "invoice.payment_succeeded",
]
FAILED_RENEWAL_EVENTS = [
    "invoice.created",
    "invoice.finalized",
    "customer.subscription.updated",
    "payment_intent.created",
    "charge.failed",
    "payment_intent.payment_failed",
    "invoice.payment_failed",
    "customer.subscription.updated",
]


def test_checkout_creates_subscription_invoice_payment(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    c = sbx.client.v1
    price = sbx.price()
    session = c.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "new@example.com",
            "client_reference_id": "user-42",
            "success_url": "http://app.test/ok?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://app.test/no",
            "line_items": [{"price": price.id, "quantity": 1}],
            "metadata": {"user_id": "42"},
            "subscription_data": {"metadata": {"user_id": "42"}},
        }
    )
    assert_covers(session, fixtures["checkout.session"])
    assert session.status == "open" and session.payment_status == "unpaid" and session.amount_total == 19900
    sbx.flush()
    sbx.receiver.requests.clear()
    paid = sbx.pay(session.id)
    assert paid["redirect"] == f"http://app.test/ok?session_id={session.id}"
    session = c.checkout.sessions.retrieve(session.id, params={"expand": ["subscription", "customer"]})
    assert session.status == "complete" and session.payment_status == "paid"
    customer = expanded(session.customer)
    assert customer.email == "new@example.com" and session.client_reference_id == "user-42"
    sub = expanded(session.subscription)
    assert sub.status == "active" and sub.metadata["user_id"] == "42"
    assert_covers(sub, fixtures["subscription"])
    item = sub["items"].data[0]
    assert_covers(item, fixtures["subscription_item"])
    assert item.price.id == price.id and item.current_period_end - item.current_period_start >= 28 * DAY
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice.payments.data.payment.payment_intent"]})
    invoice = expanded(sub.latest_invoice)
    assert_covers(invoice, fixtures["invoice"], ignore={"subscription"})
    assert invoice.status == "paid" and invoice.amount_paid == 19900 and invoice.billing_reason == "subscription_create"
    assert present(present(invoice.parent).subscription_details).subscription == sub.id
    assert not {"subscription", "charge", "payment_intent", "paid"} & set(invoice.to_dict())
    assert invoice.lines.data[0].period.end == item.current_period_end
    [payment] = present(invoice.payments).data
    assert payment.status == "paid" and payment.amount_paid == 19900 and payment.payment.type == "payment_intent"
    pi = expanded(payment.payment.payment_intent)
    assert_covers(pi, fixtures["payment_intent"])
    assert pi.status == "succeeded" and pi.amount_received == 19900
    charge = c.charges.retrieve(id_of(pi.latest_charge))
    assert_covers(charge, fixtures["charge"], ignore={"refunds"})
    assert charge.status == "succeeded" and charge.paid and charge.amount_refunded == 0 and "refunds" not in charge
    pm = c.payment_methods.retrieve(present(charge.payment_method))
    assert_covers(pm, fixtures["payment_method"])
    assert present(pm.card).last4 == "4242"
    listed = c.checkout.sessions.list(params={"customer": customer.id, "status": "complete"})
    assert [s.id for s in listed.data] == [session.id]
    assert [s.id for s in c.subscriptions.list(params={"customer": customer.id}).data] == [sub.id]
    assert [s.id for s in c.subscriptions.list(params={"price": price.id}).data] == [sub.id]
    assert [i.id for i in c.invoices.list(params={"subscription": sub.id}).data] == [invoice.id]
    with_customers = c.invoices.list(params={"customer": customer.id, "expand": ["data.customer"]})
    assert expanded(with_customers.data[0].customer).email == "new@example.com"

    sbx.flush()
    events = sbx.receiver.events()
    assert [e.type for e in events] == ["customer.created", *CHECKOUT_EVENTS]
    completed = events[-1]
    assert completed.data.object.id == session.id and completed.data.object.subscription == sub.id
    assert_covers(completed, fixtures["event"])
    assert completed.livemode is False and completed.api_version
    updated = events[-2]
    assert present(updated.data.previous_attributes).status == "incomplete"
    assert sbx.receiver.requests[0]["headers"]["stripe-signature"].startswith("t=")


def test_renewal_by_advancing_clock(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    end = sub["items"].data[0].current_period_end
    sbx.flush()
    sbx.receiver.requests.clear()
    sbx.advance(end - sbx.now() + 60)
    sbx.flush()
    events = sbx.receiver.events()
    assert [e.type for e in events] == RENEWAL_EVENTS
    assert all(e.created >= end for e in events)
    sub = c.subscriptions.retrieve(sub.id)
    item = sub["items"].data[0]
    assert sub.status == "active" and item.current_period_start == end and item.current_period_end > end + 27 * DAY
    invoices = c.invoices.list(params={"subscription": sub.id}).data
    assert len(invoices) == 2
    renewal = invoices[0]
    assert renewal.id == sub.latest_invoice and renewal.status == "paid" and renewal.amount_paid == 19900
    assert renewal.billing_reason == "subscription_cycle" and renewal.lines.data[0].period.start == end
    paid_event = next(e for e in events if e.type == "invoice.paid")
    assert paid_event.data.object.id == renewal.id
    sub_event = next(e for e in events if e.type == "customer.subscription.updated")
    assert present(sub_event.data.previous_attributes)["items"].data[0].current_period_end == end
    listed = c.events.list(params={"created": {"gte": end}, "type": "invoice.paid"})
    assert [e.id for e in listed.data] == [paid_event.id]


def test_failed_renewal_recovers_after_card_update(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    sbx.set_card(sub.customer, "4000000000000002")
    end = sub["items"].data[0].current_period_end
    sbx.flush()
    sbx.receiver.requests.clear()
    sbx.advance(end - sbx.now() + 60)
    sbx.flush()
    assert sbx.receiver.types() == FAILED_RENEWAL_EVENTS
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due"
    latest = expanded(sub.latest_invoice)
    assert latest.status == "open" and latest.attempt_count == 1
    assert latest.next_payment_attempt == end + 3 * DAY
    sbx.set_card(sub.customer, "4242424242424242")
    sbx.flush()
    sbx.receiver.requests.clear()
    sbx.advance(3 * DAY)
    sbx.flush()
    assert sbx.receiver.types() == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    latest = expanded(sub.latest_invoice)
    assert sub.status == "active" and latest.status == "paid"
    assert latest.attempt_count == 2


def test_failed_renewal_cancels_after_retries(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    sbx.set_card(sub.customer, "4000000000000341")
    end = sub["items"].data[0].current_period_end
    sbx.advance(end - sbx.now() + 8 * DAY)
    sbx.flush()
    types = sbx.receiver.types()
    assert types.count("invoice.payment_failed") == 4
    assert types[-1] == "customer.subscription.deleted"
    sub = c.subscriptions.retrieve(sub.id)
    assert sub.status == "canceled" and sub.ended_at == end + 7 * DAY
    assert c.subscriptions.list(params={"customer": id_of(sub.customer)}).data == []
    assert len(c.subscriptions.list(params={"customer": id_of(sub.customer), "status": "all"}).data) == 1


def test_cancel_of_past_due_subscription_stops_collection(sbx: Sandbox) -> None:
    """Stripe: "upon subscription cancellation, Stripe stops automatic collection of all finalized invoices for the
    customer": the failed renewal's invoice stays open, but no retry is scheduled or made."""
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    sbx.set_card(sub.customer, "4000000000000341")
    end = sub["items"].data[0].current_period_end
    sbx.advance(end - sbx.now() + 60)
    sbx.flush()
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    owed = expanded(sub.latest_invoice)
    assert sub.status == "past_due" and owed.next_payment_attempt and owed.auto_advance
    sbx.receiver.requests.clear()
    canceled = c.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    owed = c.invoices.retrieve(owed.id)
    assert owed.status == "open" and owed.auto_advance is False and owed.next_payment_attempt is None
    sbx.advance(30 * DAY)
    sbx.flush()
    assert sbx.receiver.types() == ["customer.subscription.deleted", "invoice.updated"]
    owed = c.invoices.retrieve(owed.id)
    assert owed.status == "open" and owed.attempt_count == 1 and owed.amount_paid == 0


def test_cancel_at_period_end_resume_and_end(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    end = sub["items"].data[0].current_period_end
    updated = c.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert updated.cancel_at_period_end and updated.cancel_at == end and updated.status == "active"
    resumed = c.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert not resumed.cancel_at_period_end and resumed.cancel_at is None
    c.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    sbx.flush()
    sbx.receiver.requests.clear()
    sbx.advance(end - sbx.now() + 10)
    sbx.flush()
    events = sbx.receiver.events()
    assert [e.type for e in events] == ["customer.subscription.deleted"]
    assert events[0].data.object.status == "canceled" and events[0].data.object.ended_at == end
    assert len(c.invoices.list(params={"subscription": sub.id}).data) == 1


def test_cancel_now_and_cancel_at(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    canceled = c.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at and canceled.canceled_at
    with pytest.raises(stripe.InvalidRequestError):
        c.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    _, sub2 = sbx.subscribe(email="b@example.com")
    at = sbx.now() + 5 * DAY
    assert c.subscriptions.update(sub2.id, params={"cancel_at": at}).cancel_at == at
    sbx.advance(6 * DAY)
    sub2 = c.subscriptions.retrieve(sub2.id)
    assert sub2.status == "canceled" and sub2.ended_at == at
    sbx.flush()
    assert sbx.receiver.types().count("customer.subscription.deleted") == 2


def test_trial_end_extends_period_without_charge(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    end = sub["items"].data[0].current_period_end
    new_end = end + 30 * DAY
    updated = c.subscriptions.update(sub.id, params={"trial_end": new_end, "proration_behavior": "none"})
    assert updated.trial_end == new_end and updated["items"].data[0].current_period_end == new_end
    assert updated.status == "trialing"
    sbx.advance(end - sbx.now() + DAY)
    assert len(c.invoices.list(params={"subscription": sub.id}).data) == 1
    sbx.advance(30 * DAY)
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and expanded(sub.latest_invoice).amount_paid == 19900
    assert sub["items"].data[0].current_period_start == new_end


def test_price_change_and_metadata(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    bigger = sbx.price(amount=29900)
    item_id = sub["items"].data[0].id
    updated = c.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item_id, "price": bigger.id}],
            "proration_behavior": "none",
            "metadata": {"tier": "max"},
        },
    )
    assert updated["items"].data[0].price.id == bigger.id and updated.metadata["tier"] == "max"
    sbx.advance(updated["items"].data[0].current_period_end - sbx.now() + 5)
    invoice = c.invoices.retrieve(id_of(c.subscriptions.retrieve(sub.id).latest_invoice))
    assert invoice.amount_paid == 29900


def test_trial_checkout(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _session, sub = sbx.subscribe(subscription_data={"trial_period_days": 14})
    assert sub.status == "trialing" and present(sub.trial_end) - present(sub.trial_start) == 14 * DAY
    invoice = c.invoices.retrieve(id_of(sub.latest_invoice))
    assert invoice.amount_paid == 0 and invoice.status == "paid"
    assert c.invoice_payments.list(params={"invoice": invoice.id}).data == []
    sbx.advance(15 * DAY)
    sub = c.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and expanded(sub.latest_invoice).amount_paid == 19900


def test_refunds_partial_full_and_over(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    [payment] = c.invoice_payments.list(params={"invoice": id_of(sub.latest_invoice)}).data
    sbx.flush()
    sbx.receiver.requests.clear()
    partial = c.refunds.create(
        params={
            "payment_intent": id_of(payment.payment.payment_intent),
            "amount": 5000,
            "reason": "requested_by_customer",
            "metadata": {"ticket": "t1"},
        }
    )
    assert_covers(partial, fixtures["refund"])
    assert partial.amount == 5000 and partial.status == "succeeded" and present(partial.metadata)["ticket"] == "t1"
    charge = c.charges.retrieve(id_of(partial.charge), params={"expand": ["refunds"]})
    assert charge.amount_refunded == 5000 and not charge.refunded and present(charge.refunds).data[0].id == partial.id
    assert "refunds" not in c.charges.retrieve(charge.id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.refunds.create(params={"charge": charge.id, "amount": 20000})
    assert err.value.http_status == 400 and err.value.code == "amount_too_large"
    rest = c.refunds.create(params={"charge": charge.id})
    assert rest.amount == 14900
    charge = c.charges.retrieve(charge.id)
    assert charge.refunded and charge.amount_refunded == 19900
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.refunds.create(params={"charge": charge.id})
    assert err.value.code == "charge_already_refunded"
    assert {r.id for r in c.refunds.list(params={"charge": charge.id}).data} == {partial.id, rest.id}
    assert c.refunds.retrieve(rest.id).amount == 14900
    sbx.flush()
    events = sbx.receiver.events()
    assert [e.type for e in events] == ["refund.created", "charge.refunded"] * 2
    assert events[1].data.object.amount_refunded == 5000
    assert present(events[1].data.previous_attributes).amount_refunded == 0
    assert events[3].data.object.refunded is True
