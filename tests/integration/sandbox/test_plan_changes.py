"""Price changes with proration, `pending_if_incomplete`, invoice previews and subscription schedules, driven with
the real SDK. Every amount is recomputed here from the prices and the clock, the way Stripe documents it."""

from __future__ import annotations

from typing import Any

import stripe

from tests.support.narrow import id_of, present

from .conftest import Sandbox

DAY = 86400
DECLINING_CARD = "4000000000000341"


def prorated(amount: int, remaining: int, period: int) -> int:
    """Stripe's proration of one line: amount × remaining / period, to the nearest minor unit (halves up)."""
    whole, rest = divmod(amount * remaining, period)
    return whole + (1 if 2 * rest >= period else 0)


def _period(sub: stripe.Subscription) -> tuple[int, int]:
    item = sub["items"].data[0]
    return int(item.current_period_start), int(item.current_period_end)


def _change(
    sbx: Sandbox,
    sub: stripe.Subscription,
    price: stripe.Price,
    at: int,
    payment_behavior: str = "pending_if_incomplete",
) -> stripe.Subscription:
    return sbx.client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": price.id}],
            "proration_behavior": "always_invoice",
            "proration_date": at,
            "payment_behavior": payment_behavior,
        },
    )


def _preview(sbx: Sandbox, sub: stripe.Subscription, price: stripe.Price, at: int) -> stripe.Invoice:
    return sbx.client.v1.invoices.create_preview(
        params={
            "customer": id_of(sub.customer),
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": sub["items"].data[0].id, "price": price.id}],
                "proration_date": at,
                "proration_behavior": "always_invoice",
            },
        }
    )


def test_an_upgrade_mid_period_invoices_the_prorated_difference_at_once_and_the_preview_said_so(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    bigger = sbx.price(49900)
    sbx.advance(9 * DAY + 3 * 3600 + 17)
    at = sbx.now()
    start, end = _period(sub)
    credit = prorated(19900, end - at, end - start)
    charge = prorated(49900, end - at, end - start)

    preview = _preview(sbx, sub, bigger, at)
    updated = _change(sbx, sub, bigger, at)

    assert preview.id.startswith("upcoming_in_") and preview.status == "draft"
    assert [line.amount for line in preview.lines.data] == [-credit, charge]
    assert preview.amount_due == charge - credit
    invoice = sbx.client.v1.invoices.retrieve(id_of(updated.latest_invoice))
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    assert invoice.amount_paid == preview.amount_due
    assert [(line.amount, line.period.start, line.period.end) for line in invoice.lines.data] == [
        (-credit, at, end),
        (charge, at, end),
    ]
    details = [present(line.parent).subscription_item_details for line in invoice.lines.data]
    assert [present(d).proration for d in details] == [True, True]
    credited = present(present(details[0]).proration_details).credited_items
    assert present(credited).invoice == id_of(sub.latest_invoice)
    assert updated["items"].data[0].price.id == bigger.id and updated.pending_update is None
    assert _period(updated) == (start, end)  # same interval: the billing cycle stays


def test_a_declined_upgrade_with_pending_if_incomplete_changes_nothing_but_pending_update(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    bigger = sbx.price(49900)
    sbx.set_card(id_of(sub.customer), DECLINING_CARD)
    sbx.advance(5 * DAY)
    at = sbx.now()
    sbx.flush()
    with sbx.receiver.lock:
        sbx.receiver.requests.clear()

    updated = _change(sbx, sub, bigger, at)

    assert updated.status == "active" and updated["items"].data[0].price.id == sub["items"].data[0].price.id
    pending = updated.pending_update
    assert pending is not None and pending.expires_at == at + 23 * 3600
    assert pending.subscription_items and pending.subscription_items[0].price.id == bigger.id
    invoice = sbx.client.v1.invoices.retrieve(id_of(updated.latest_invoice))
    assert invoice.status == "open" and invoice.billing_reason == "subscription_update"
    assert invoice.amount_due == _preview(sbx, sub, bigger, at).amount_due
    sbx.flush()
    changed = [e for e in sbx.receiver.events() if e.type == "customer.subscription.updated"]
    assert changed and present(changed[-1].data.previous_attributes)["pending_update"] is None

    sbx.advance(23 * 3600 + 1)
    sbx.flush()
    after = sbx.client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None and after["items"].data[0].price.id == sub["items"].data[0].price.id
    assert "customer.subscription.pending_update_expired" in sbx.receiver.types()


def test_a_monthly_to_yearly_change_credits_the_unused_month_and_bills_a_new_year_from_now(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    yearly = sbx.price(199000, interval="year")
    sbx.advance(12 * DAY)
    at = sbx.now()
    start, end = _period(sub)
    credit = prorated(19900, end - at, end - start)

    preview = _preview(sbx, sub, yearly, at)
    updated = _change(sbx, sub, yearly, at)

    invoice = sbx.client.v1.invoices.retrieve(id_of(updated.latest_invoice))
    assert [line.amount for line in invoice.lines.data] == [-credit, 199000] == [x.amount for x in preview.lines.data]
    assert invoice.amount_paid == 199000 - credit == preview.amount_due
    new_start, new_end = _period(updated)
    assert new_start == at == updated.billing_cycle_anchor
    assert new_end - new_start in (365 * DAY, 366 * DAY)


def test_a_downgrade_with_always_invoice_that_would_leave_a_credit_is_refused_clearly(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    smaller = sbx.price(9900)
    sbx.advance(DAY)
    try:
        _change(sbx, sub, smaller, sbx.now())
    except stripe.InvalidRequestError as exc:
        assert "customer balance" in str(exc.user_message)
    else:
        raise AssertionError("a credit invoice was accepted")
    assert sbx.client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == sub["items"].data[0].price.id


def _schedule_downgrade(sbx: Sandbox, sub: stripe.Subscription, price: stripe.Price) -> stripe.SubscriptionSchedule:
    c = sbx.client.v1
    schedule = c.subscription_schedules.create(params={"from_subscription": sub.id})
    current = schedule.phases[0]
    params: Any = {
        "end_behavior": "release",
        "phases": [
            {
                "items": [{"price": sub["items"].data[0].price.id, "quantity": 1}],
                "start_date": current.start_date,
                "end_date": current.end_date,
            },
            {"items": [{"price": price.id, "quantity": 1}], "iterations": 1},
        ],
    }
    return c.subscription_schedules.update(schedule.id, params=params)


def test_a_downgrade_scheduled_for_the_period_end_applies_at_renewal_and_is_previewed(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    smaller = sbx.price(9900)
    start, end = _period(sub)

    schedule = _schedule_downgrade(sbx, sub, smaller)

    assert schedule.status == "active" and schedule.subscription == sub.id
    assert (schedule.phases[0].start_date, schedule.phases[0].end_date) == (start, end)
    assert schedule.phases[1].start_date == end and schedule.phases[1].end_date > end
    assert c.subscriptions.retrieve(sub.id).schedule == schedule.id
    upcoming = c.invoices.create_preview(params={"subscription": sub.id})
    assert upcoming.amount_due == 9900 and upcoming.lines.data[0].period.start == end
    try:
        c.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    except stripe.InvalidRequestError as exc:
        assert "managed by the subscription schedule" in str(exc.user_message)
    else:
        raise AssertionError("a scheduled subscription's cancellation was changed directly")

    sbx.advance(end - sbx.now() + 60)

    renewed = c.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].price.id == smaller.id
    assert renewed["items"].data[0].id == sub["items"].data[0].id
    renewal = c.invoices.retrieve(id_of(renewed.latest_invoice))
    assert renewal.billing_reason == "subscription_cycle" and renewal.amount_paid == 9900 == upcoming.amount_due
    assert c.subscription_schedules.retrieve(schedule.id).current_phase.start_date == end  # type: ignore[union-attr]
    sbx.flush()
    assert {"subscription_schedule.created", "subscription_schedule.updated"} <= set(sbx.receiver.types())


def test_releasing_a_schedule_cancels_the_pending_downgrade(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    schedule = _schedule_downgrade(sbx, sub, sbx.price(9900))
    _, end = _period(sub)

    released = c.subscription_schedules.release(schedule.id)

    assert released.status == "released" and released.released_subscription == sub.id and released.subscription is None
    assert c.subscriptions.retrieve(sub.id).schedule is None
    sbx.advance(end - sbx.now() + 60)
    renewed = c.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].price.id == sub["items"].data[0].price.id
    assert c.invoices.retrieve(id_of(renewed.latest_invoice)).amount_paid == 19900
    sbx.flush()
    assert "subscription_schedule.released" in sbx.receiver.types()


def test_canceling_a_schedule_cancels_its_subscription(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    schedule = _schedule_downgrade(sbx, sub, sbx.price(9900))

    canceled = c.subscription_schedules.cancel(schedule.id)

    assert canceled.status == "canceled" and canceled.canceled_at is not None
    assert c.subscriptions.retrieve(sub.id).status == "canceled"


def test_a_second_schedule_for_the_same_subscription_is_refused(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    c.subscription_schedules.create(params={"from_subscription": sub.id})
    try:
        c.subscription_schedules.create(params={"from_subscription": sub.id})
    except stripe.InvalidRequestError as exc:
        assert "already attached to a schedule" in str(exc.user_message)
    else:
        raise AssertionError("a second schedule was created")


def test_voiding_the_invoice_of_a_pending_update_drops_the_update(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    sbx.set_card(id_of(sub.customer), DECLINING_CARD)
    updated = _change(sbx, sub, sbx.price(49900), sbx.now())
    assert updated.pending_update is not None

    voided = sbx.client.v1.invoices.void_invoice(id_of(updated.latest_invoice))

    assert voided.status == "void" and voided.status_transitions.voided_at is not None
    after = sbx.client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None and after["items"].data[0].price.id == sub["items"].data[0].price.id
    sbx.flush()
    assert "invoice.voided" in sbx.receiver.types()


def test_create_prorations_waits_for_the_renewal_invoice_which_the_preview_shows(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    bigger = sbx.price(49900)
    sbx.advance(15 * DAY)
    at = sbx.now()
    start, end = _period(sub)
    credit, charge = prorated(19900, end - at, end - start), prorated(49900, end - at, end - start)

    updated = c.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": bigger.id}],
            "proration_behavior": "create_prorations",
            "proration_date": at,
        },
    )

    assert updated.latest_invoice == sub.latest_invoice  # nothing invoiced now
    upcoming = c.invoices.create_preview(params={"subscription": sub.id})
    assert [line.amount for line in upcoming.lines.data] == [-credit, charge, 49900]
    sbx.advance(end - sbx.now() + 60)
    renewal = c.invoices.retrieve(id_of(c.subscriptions.retrieve(sub.id).latest_invoice))
    assert sorted(line.amount for line in renewal.lines.data) == sorted([-credit, charge, 49900])
    assert renewal.amount_paid == upcoming.amount_due == 49900 + charge - credit
