"""The pure comparison of one customer's rows with the same customer at Stripe (pinned-version shapes, built by
hand with only the fields the readers use)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payment.reconciliation.compare import (
    OurInvoice,
    OurRefund,
    Ours,
    OurSubscription,
    Theirs,
    charges_to_open,
    compare_customer,
    compare_invoices,
    compare_refunds,
    compare_subscriptions,
)

START = datetime(2027, 1, 1, tzinfo=UTC)
END = datetime(2027, 2, 1, tzinfo=UTC)


def stripe_sub(status: str = "active", *, price: str = "price_1", cancel_at_period_end: bool = False) -> dict[str, Any]:
    item = {
        "id": "si_1",
        "price": {"id": price},
        "current_period_start": int(START.timestamp()),
        "current_period_end": int(END.timestamp()),
    }
    return {
        "id": "sub_1",
        "object": "subscription",
        "status": status,
        "customer": "cus_1",
        "items": {"object": "list", "data": [item], "has_more": False},
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "trial_end": None,
        "metadata": {},
    }


def our_sub(status: str = "active", *, price: str | None = "price_1") -> OurSubscription:
    return OurSubscription("sub_1", status, price, END, False, None)


def stripe_invoice(status: str = "paid", amount: int = 29900, attempts: int = 1) -> dict[str, Any]:
    return {
        "id": "in_1",
        "object": "invoice",
        "status": status,
        "currency": "thb",
        "amount_paid": amount if status == "paid" else 0,
        "amount_due": amount,
        "attempt_count": attempts,
        "customer": "cus_1",
        "status_transitions": {"paid_at": int(START.timestamp()) if status == "paid" else None},
        "lines": {"object": "list", "data": [], "has_more": False},
    }


def our_invoice(status: str = "paid", *, refunded: int = 0) -> OurInvoice:
    paid_at = START if status in ("paid", "refunded", "partially_refunded") else None
    return OurInvoice("in_1", status, 29900, "thb", paid_at, refunded, "ch_1", "pi_1")


def stripe_refund(refund_id: str = "re_1", *, amount: int = 29900, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "thb",
        "status": status,
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "metadata": {},
    }


def test_equal_subscriptions_make_no_difference() -> None:
    assert compare_subscriptions([our_sub()], [stripe_sub()]) == []


def test_a_subscription_canceled_at_stripe_differs_in_status_only_and_names_the_deleted_event() -> None:
    [diff] = compare_subscriptions([our_sub()], [stripe_sub("canceled")])
    assert (diff.kind, diff.ours, diff.theirs) == ("subscription_differs", {"status": "active"}, {"status": "canceled"})
    assert diff.expected_event == "customer.subscription.deleted"


def test_a_price_change_and_a_cancel_at_period_end_are_differences() -> None:
    [diff] = compare_subscriptions([our_sub()], [stripe_sub(price="price_2", cancel_at_period_end=True)])
    assert diff.theirs == {"price": "price_2", "cancel_at_period_end": True}
    assert diff.expected_event == "customer.subscription.updated"


def test_a_plan_without_a_stripe_price_is_not_compared_by_price() -> None:
    assert compare_subscriptions([our_sub(price=None)], [stripe_sub(price="price_9")]) == []


def test_a_subscription_we_do_not_have_is_missing() -> None:
    [diff] = compare_subscriptions([], [stripe_sub()])
    assert (diff.kind, diff.ours, diff.expected_event) == ("subscription_missing", {}, "customer.subscription.created")
    assert diff.theirs["status"] == "active"


def test_an_invoice_marked_uncollectible_differs_from_our_failed_payment() -> None:
    [diff] = compare_invoices([our_invoice("payment_failed")], [stripe_invoice("uncollectible")])
    assert diff.ours == {"status": "payment_failed"} and diff.theirs == {"status": "uncollectible"}
    assert diff.expected_event == "invoice.marked_uncollectible"


def test_our_refunded_invoice_matches_stripes_paid_invoice() -> None:
    assert compare_invoices([our_invoice("refunded", refunded=29900)], [stripe_invoice("paid")]) == []


def test_an_open_invoice_stripe_tried_is_our_failed_payment_and_drafts_are_skipped() -> None:
    assert compare_invoices([our_invoice("payment_failed")], [stripe_invoice("open", attempts=1)]) == []
    assert compare_invoices([our_invoice("paid")], [stripe_invoice("draft")]) == []


def test_invoices_we_never_recorded_are_not_invoice_drifts() -> None:
    assert compare_invoices([], [stripe_invoice()]) == []


def test_a_refund_made_in_stripe_is_missing_here_with_its_charge() -> None:
    [diff] = compare_refunds([our_invoice()], [], [stripe_refund()])
    assert diff.kind == "refund_missing" and diff.expected_event == "charge.refunded"
    assert diff.theirs == {"amount_cents": 29900, "status": "succeeded", "charge": "ch_1"}


def test_a_refund_whose_status_moved_differs() -> None:
    [diff] = compare_refunds([our_invoice()], [OurRefund("re_1", 29900, "pending")], [stripe_refund()])
    assert diff.kind == "refund_differs" and diff.ours == {"status": "pending"}
    assert diff.theirs == {"status": "succeeded", "charge": "ch_1"}


def test_refunds_of_charges_that_paid_no_invoice_of_ours_are_not_ours() -> None:
    other = {**stripe_refund(), "charge": "ch_other", "payment_intent": "pi_other"}
    assert compare_refunds([our_invoice()], [], [other]) == []


def test_only_refunded_charges_of_our_invoices_are_opened() -> None:
    charges = [
        {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 100},
        {"id": "ch_2", "payment_intent": "pi_2", "amount_refunded": 100},
        {"id": "ch_3", "payment_intent": "pi_1x", "amount_refunded": 0},
    ]
    assert charges_to_open([our_invoice()], [], charges) == ["ch_1"]


def test_a_deleted_stripe_customer_is_a_difference() -> None:
    found = compare_customer("cus_1", Ours(), Theirs(customer={"id": "cus_1", "object": "customer", "deleted": True}))
    assert [(d.kind, d.stripe_object_id) for d in found] == [("customer_deleted", "cus_1")]
    assert compare_customer("cus_1", Ours(), Theirs(customer={"id": "cus_1", "object": "customer"})) == []
