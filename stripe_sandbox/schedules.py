"""Subscription schedules: the object, its phases, and what happens when the clock reaches a phase boundary.

A schedule made `from_subscription` starts with one phase, the subscription's current period at its current items.
At a phase's start the subscription takes that phase's items (no proration: the boundary is a period end here); when
the last phase ends, `end_behavior=release` leaves the subscription running on its own, `cancel` ends it.
"""

from __future__ import annotations

import copy
from typing import Any

from . import shapes_billing as sb
from .errors import StripeError, invalid, not_found
from .forms import get_dict, get_int, get_list, get_str
from .periods import add_interval, current_period, items_snapshot
from .store import JSON, Store, new_id

END_BEHAVIORS = ("release", "cancel")
LIVE = ("not_started", "active")


def _phase_item(price: JSON, quantity: int) -> JSON:
    return {
        "billing_thresholds": None,
        "discounts": [],
        "metadata": {},
        "plan": price["id"],
        "price": price["id"],
        "quantity": quantity,
        "tax_rates": [],
    }


def _phase(currency: str, items: list[JSON], start: int, end: int, proration_behavior: str) -> JSON:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": items,
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": proration_behavior,
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
    }


def schedule_from_subscription(store: Store, sub: JSON) -> JSON:
    """A new active schedule whose one phase is the subscription's current period."""
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("from_subscription", "You cannot migrate a canceled subscription to a subscription schedule.")
    if sub.get("schedule"):
        raise invalid(
            "from_subscription",
            f"You cannot migrate a subscription that is already attached to a schedule: `{sub['schedule']}`.",
        )
    now = store.now()
    start, end = current_period(sub)
    items = [_phase_item(item["price"], int(item["quantity"])) for item in sub["items"]["data"]]
    return {
        "id": new_id("sub_sched"),
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "canceled_at": None,
        "completed_at": None,
        "created": now,
        "current_phase": {"end_date": end, "start_date": start},
        "customer": sub["customer"],
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": {},
        "phases": [_phase(sub["currency"], items, start, end, "create_prorations")],
        "released_at": None,
        "released_subscription": None,
        "status": "active",
        "subscription": sub["id"],
        "test_clock": sub.get("test_clock"),
    }


def _phase_end(store: Store, raw: dict[str, Any], items: list[JSON], start: int, where: str) -> int:
    end_date = get_int(raw, "end_date")
    if end_date is not None:
        if end_date <= start:
            raise invalid(f"{where}[end_date]", "The end date of a phase must be after its start date.")
        return end_date
    price = store.get("price", items[0]["price"])
    assert price is not None
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    duration = get_dict(raw, "duration")
    if duration:
        interval = get_str(duration, "interval") or ""
        if interval not in ("day", "week", "month", "year"):
            raise invalid(f"{where}[duration][interval]", "Invalid interval: must be one of day, week, month or year")
        return add_interval(start, interval, get_int(duration, "interval_count") or 1)
    iterations = get_int(raw, "iterations") or 1
    if iterations < 1:
        raise invalid(f"{where}[iterations]", "Invalid iterations: must be at least 1")
    return add_interval(start, recurring["interval"], int(recurring["interval_count"]) * iterations)


def set_phases(store: Store, sched: JSON, sub: JSON, raw_phases: list[Any], proration_behavior: str) -> None:
    """Replace the phases (phases[0] is the current one and keeps its start date), as `POST .../{id}` does."""
    if not raw_phases:
        raise invalid("phases", "A subscription schedule needs at least one phase.")
    phases: list[JSON] = []
    start = int(sched["phases"][0]["start_date"])
    for i, raw in enumerate(raw_phases):
        where = f"phases[{i}]"
        if not isinstance(raw, dict):
            raise invalid(where, "Invalid phase")
        given_start = get_str(raw, "start_date")
        if given_start is not None and given_start != "now" and int(given_start) != start:
            message = (
                "You can not modify the start date of the current phase."
                if i == 0
                else "A phase must start when the previous phase ends."
            )
            raise invalid(f"{where}[start_date]", message)
        items: list[JSON] = []
        for j, entry in enumerate(get_list(raw, "items")):
            price_id = get_str(entry, "price", required=True) if isinstance(entry, dict) else None
            price = store.get("price", price_id or "")
            if price is None:
                raise not_found("price", str(price_id), f"{where}[items][{j}][price]")
            if price["currency"] != sub["currency"]:
                raise invalid(f"{where}[items][{j}][price]", "The price currency must match the subscription currency.")
            assert isinstance(entry, dict)
            items.append(_phase_item(price, get_int(entry, "quantity") or 1))
        if not items:
            raise invalid(f"{where}[items]", "Each phase needs at least one item.")
        end = _phase_end(store, raw, items, start, where)
        behavior = get_str(raw, "proration_behavior") or proration_behavior
        phases.append(_phase(sub["currency"], items, start, end, behavior))
        start = end
    sched["phases"] = phases
    sched["current_phase"] = {"end_date": phases[0]["end_date"], "start_date": phases[0]["start_date"]}


def release(store: Store, sched: JSON, sub: JSON | None) -> None:
    """The schedule lets go of its subscription, which keeps running as it is (subscription_schedule.released)."""
    now = store.now()
    previous = {"status": sched["status"], "released_at": None, "released_subscription": None}
    sched.update(
        status="released",
        released_at=now,
        released_subscription=sched["subscription"],
        subscription=None,
        current_phase=None,
    )
    store.emit("subscription_schedule.released", sched, previous)
    if sub is not None and sub.get("schedule") == sched["id"]:
        sub["schedule"] = None
        store.emit("customer.subscription.updated", sub, {"schedule": sched["id"]})


def end_with_subscription(store: Store, sub: JSON) -> None:
    """The subscription ended: its live schedule is canceled with it (subscription_schedule.canceled)."""
    sched = store.get("subscription_schedule", sub["schedule"]) if sub.get("schedule") else None
    if sched is None or sched["status"] not in LIVE:
        return
    previous = {"status": sched["status"], "canceled_at": None}
    sched.update(status="canceled", canceled_at=store.now(), current_phase=None)
    store.emit("subscription_schedule.canceled", sched, previous)


def refuse_cancel_change(sub: JSON) -> None:
    """Stripe refuses to change a scheduled subscription's cancellation directly."""
    if sub.get("schedule"):
        raise StripeError(
            400,
            f"The subscription is managed by the subscription schedule `{sub['schedule']}`, and updating any "
            "cancelation behavior directly is not allowed. Please update the schedule instead.",
        )


def at_period_end(store: Store, sub: JSON, at: int) -> tuple[str, JSON | None]:
    """The period ended at `at`: move the schedule along. Returns ("cancel", None) when the schedule ends the
    subscription, ("items", previous items) when a new phase changed the items, else ("", None)."""
    sched = store.get("subscription_schedule", sub["schedule"]) if sub.get("schedule") else None
    if sched is None or sched["status"] != "active":
        return "", None
    phase = next((p for p in sched["phases"] if int(p["start_date"]) == at), None)
    if phase is None:
        if at >= int(sched["phases"][-1]["end_date"]):
            if sched["end_behavior"] == "cancel":
                previous = {"status": "active", "completed_at": None}
                sched.update(status="completed", completed_at=at, current_phase=None)
                store.emit("subscription_schedule.completed", sched, previous)
                return "cancel", None
            release(store, sched, sub)
        return "", None
    before = items_snapshot(sub)
    old_interval = _interval(sub["items"]["data"][0]["price"])
    first = sub["items"]["data"][0]
    items: list[JSON] = []
    for i, entry in enumerate(phase["items"]):
        price = store.get("price", entry["price"])
        assert price is not None
        if i == 0:
            item = copy.deepcopy(first)
            item["price"] = copy.deepcopy(price)
            item["plan"] = sb.plan_of(price)
            item["quantity"] = entry["quantity"]
        else:
            item = sb.subscription_item(at, sub["id"], price, int(entry["quantity"]), at, at)
        items.append(item)
    sub["items"]["data"] = items
    if _interval(items[0]["price"]) != old_interval:
        # A new interval restarts the billing cycle at the phase start.
        sub["_anchor"] = at
        sub["_cycles"] = 0
        sub["billing_cycle_anchor"] = at
    previous_phase = sched["current_phase"]
    sched["current_phase"] = {"end_date": phase["end_date"], "start_date": phase["start_date"]}
    store.emit("subscription_schedule.updated", sched, {"current_phase": previous_phase})
    return "items", before


def _interval(price: JSON) -> tuple[str, int]:
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    return str(recurring["interval"]), int(recurring["interval_count"])
