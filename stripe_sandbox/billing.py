"""Subscription lifecycle: checkout completion, renewals, failed payments and retries, cancellation; and the
other things that happen as the clock passes (Checkout expiry, card refund references)."""

from __future__ import annotations

import copy
import math

from . import coupons as cp
from . import shapes
from . import shapes_billing as sb
from .payments import attach_card, attempt_payment, create_invoice, default_payment_method, settle_refund
from .periods import current_period, items_snapshot, period_end_after, set_period
from .schedules import at_period_end, end_with_subscription
from .store import JSON, Store

DAY = 86400
DEFAULT_RETRY_DAYS: tuple[int, ...] = (3, 5, 7)


def complete_checkout(store: Store, session: JSON, card: JSON | None, email: str | None) -> JSON:
    """Pay an open subscription-mode Checkout Session with a card that charges fine (or, for a trial with
    `payment_method_collection=if_required`, with no card at all). Returns the subscription."""
    now = store.now()
    cust = store.get("customer", session["customer"]) if session.get("customer") else None
    if cust is None:
        cust = store.add(shapes.customer(now, email=email or session.get("customer_email")))
        store.emit("customer.created", cust)
    elif email and not cust.get("email"):
        previous = {"email": cust.get("email")}
        cust["email"] = email
        store.emit("customer.updated", cust, previous)
    pm = attach_card(store, cust, card) if card is not None else None
    sub_data = session.get("_subscription_data") or {}
    trial_days = int(sub_data.get("trial_period_days") or 0)
    sub = sb.subscription(
        now,
        cust["id"],
        session["currency"],
        metadata=dict(sub_data.get("metadata") or {}),
        default_payment_method=pm["id"] if pm else None,
        test_clock=cust.get("test_clock"),
        description=sub_data.get("description"),
    )
    if sub_data.get("trial_settings"):
        sub["trial_settings"] = copy.deepcopy(sub_data["trial_settings"])
    sub["discounts"] = [
        cp.discount(store, entry, customer_id=cust["id"], subscription_id=sub["id"], session_id=session["id"])["id"]
        for entry in session.get("discounts") or []
    ]
    sub["_anchor"] = now + trial_days * DAY if trial_days else now
    sub["_cycles"] = 0
    for line in session["_line_items"]:
        price = store.get("price", line["price"])
        assert price is not None
        sub["items"]["data"].append(sb.subscription_item(now, sub["id"], price, int(line["quantity"]), now, now))
    end = sub["_anchor"] if trial_days else period_end_after(sub, 1)
    sub["_cycles"] = 0 if trial_days else 1  # intervals from the anchor to the current period end
    set_period(sub, now, end)
    sub["billing_cycle_anchor"] = sub["_anchor"]
    if trial_days:
        sub.update(status="trialing", trial_start=now, trial_end=end)
    store.add(sub)
    store.emit("customer.subscription.created", sub)
    inv = create_invoice(
        store, cust, sub, "subscription_create", now, end, now, now, amount_override=0 if trial_days else None
    )
    attempt_payment(store, inv, cust)
    if sub["status"] == "incomplete":
        sub["status"] = "active"
        store.emit("customer.subscription.updated", sub, {"status": "incomplete"})
    session.update(
        status="complete",
        payment_status="paid",
        customer=cust["id"],
        subscription=sub["id"],
        invoice=inv["id"],
        customer_details=shapes.customer_details(cust),
    )
    session["customer_details"]["email"] = cust.get("email") or email
    store.emit("checkout.session.completed", session)
    return sub


def cancel_now(store: Store, sub: JSON, at: int, reason: str = "cancellation_requested") -> None:
    sub["status"] = "canceled"
    sub["ended_at"] = at
    sub["canceled_at"] = sub.get("canceled_at") or at
    sub["cancellation_details"]["reason"] = reason
    sub["pending_update"] = None
    store.emit("customer.subscription.deleted", sub)
    end_with_subscription(store, sub)
    if reason == "cancellation_requested":
        stop_collection(store, sub["customer"])


def stop_collection(store: Store, customer_id: str) -> None:
    """A requested cancellation stops automatic collection of the customer's finalized invoices, as Stripe does:
    an open invoice stays open (payable by hand, voidable) but is never attempted again (`auto_advance` false, no
    `next_payment_attempt`)."""
    for inv in store.all("invoice"):
        if inv["customer"] != customer_id or inv["status"] != "open" or not inv.get("auto_advance"):
            continue
        previous = {"auto_advance": True, "next_payment_attempt": inv.get("next_payment_attempt")}
        inv["auto_advance"] = False
        inv["next_payment_attempt"] = None
        store.emit("invoice.updated", inv, previous)


def _has_payment_method(store: Store, sub: JSON, cust: JSON) -> bool:
    return bool(sub.get("default_payment_method")) or default_payment_method(store, cust) is not None


def end_trial_without_card(store: Store, sub: JSON, at: int) -> bool:
    """A trial ended with no payment method: cancel or pause as `trial_settings` says; False for `create_invoice`
    (the renewal then invoices and the payment fails)."""
    behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    if behavior == "cancel":
        cancel_now(store, sub, at)
        return True
    if behavior == "pause":
        previous = {"status": sub["status"], "status_details": None}
        sub["status"] = "paused"
        sub["status_details"] = {
            "paused": {
                "subscription": {"type": "trial_end_without_payment_method"},
                "transitioned_at": at,
                "type": "subscription",
            }
        }
        store.emit("customer.subscription.paused", sub)
        store.emit("customer.subscription.updated", sub, previous)
        return True
    return False


def trial_will_end_at(sub: JSON) -> int | None:
    """When `customer.subscription.trial_will_end` is due: three days before the trial ends (at once for a shorter
    trial), once per trial end."""
    if sub["status"] != "trialing" or not sub.get("trial_end") or sub.get("_trial_will_end_sent") == sub["trial_end"]:
        return None
    return max(int(sub["trial_end"]) - 3 * DAY, int(sub.get("trial_start") or 0))


def renew(store: Store, sub: JSON, at: int, retry_days: tuple[int, ...]) -> None:
    """The period ended at `at`: roll to the next period, invoice it and charge the saved card."""
    cust = store.get("customer", sub["customer"])
    assert cust is not None
    if (
        sub["status"] == "trialing"
        and not _has_payment_method(store, sub, cust)
        and end_trial_without_card(store, sub, at)
    ):
        return
    old_start, old_end = current_period(sub)
    previous: JSON = {"items": items_snapshot(sub), "latest_invoice": sub.get("latest_invoice")}
    outcome, _ = at_period_end(store, sub, at)
    if outcome == "cancel":
        cancel_now(store, sub, at)
        return
    if sub.get("pending_update"):
        # An unpaid pending update does not survive into the next period (Stripe lets it expire).
        expire_pending_update(store, sub)
    sub["_cycles"] = int(sub["_cycles"]) + 1
    new_end = period_end_after(sub, int(sub["_cycles"]))
    set_period(sub, at, new_end)
    if sub["status"] == "trialing":
        previous["status"] = "trialing"
        sub["status"] = "active"
    inv = create_invoice(store, cust, sub, "subscription_cycle", at, new_end, old_start, old_end)
    previous_latest = inv.pop("_previous_latest", None)
    previous["latest_invoice"] = previous_latest
    store.emit("customer.subscription.updated", sub, previous)
    first_retry = at + retry_days[0] * DAY if retry_days else None
    if not attempt_payment(store, inv, cust, next_attempt=first_retry):
        inv["_retry_index"] = 0
        inv["_failed_at"] = at
        if first_retry is None:
            cancel_now(store, sub, at, "payment_failed")
            return
        previous = {"status": sub["status"]}
        sub["status"] = "past_due"
        store.emit("customer.subscription.updated", sub, previous)


def retry(store: Store, sub: JSON, inv: JSON, at: int, retry_days: tuple[int, ...]) -> None:
    cust = store.get("customer", sub["customer"])
    assert cust is not None
    index = int(inv.get("_retry_index", 0)) + 1
    next_attempt = int(inv["_failed_at"]) + retry_days[index] * DAY if index < len(retry_days) else None
    if attempt_payment(store, inv, cust, next_attempt=next_attempt):
        previous = {"status": sub["status"]}
        sub["status"] = "active"
        store.emit("customer.subscription.updated", sub, previous)
        return
    inv["_retry_index"] = index
    if next_attempt is None:
        cancel_now(store, sub, at, "payment_failed")


def expire_pending_update(store: Store, sub: JSON) -> None:
    """A pending update whose invoice was not paid in time is discarded; the subscription stays as it was."""
    previous = {"pending_update": sub["pending_update"]}
    sub["pending_update"] = None
    sub.pop("_pending_change", None)
    store.emit("customer.subscription.pending_update_expired", sub, previous)


def _open_invoice(store: Store, sub: JSON) -> JSON | None:
    inv = store.get("invoice", sub["latest_invoice"]) if sub.get("latest_invoice") else None
    if inv and inv["status"] == "open" and inv.get("next_payment_attempt"):
        return inv
    return None


def next_due(store: Store) -> tuple[int, str, JSON] | None:
    """The earliest pending time-driven action: (time, action, object)."""
    best: tuple[int, str, JSON] | None = None
    for session in store.objects.get("checkout.session", {}).values():
        if session["status"] == "open" and (best is None or session["expires_at"] < best[0]):
            best = (int(session["expires_at"]), "expire", session)
    for refund in store.objects.get("refund", {}).values():
        if refund.get("_settles_at") and (best is None or refund["_settles_at"] < best[0]):
            best = (int(refund["_settles_at"]), "settle", refund)
    for sub in store.objects.get("subscription", {}).values():
        candidates: list[tuple[int, str]] = []
        if sub["status"] in ("active", "trialing", "past_due") and sub.get("cancel_at"):
            candidates.append((int(sub["cancel_at"]), "cancel"))
        will_end = trial_will_end_at(sub)
        if will_end is not None:
            candidates.append((will_end, "trial_will_end"))
        if sub["status"] in ("active", "trialing"):
            candidates.append((current_period(sub)[1], "renew"))
        if sub.get("pending_update"):
            candidates.append((int(sub["pending_update"]["expires_at"]), "expire_update"))
        if sub["status"] == "past_due":
            inv = _open_invoice(store, sub)
            if inv:
                candidates.append((int(inv["next_payment_attempt"]), "retry"))
        for when, action in candidates:
            if best is None or when < best[0]:
                best = (when, action, sub)
    return best


def expire_session(store: Store, session: JSON) -> None:
    session["status"] = "expired"
    session["url"] = None
    store.emit("checkout.session.expired", session)


def run_due(store: Store, until: int | None = None, retry_days: tuple[int, ...] = DEFAULT_RETRY_DAYS) -> int:
    """Process every time-driven action due up to `until` (default: now) in time order; moves the clock."""
    target = store.now() if until is None else until
    done = 0
    store.next_due_at = None  # unknown until the loop below finds the next one
    while done < 100_000:
        due = next_due(store)
        if due is None or due[0] > target:
            store.next_due_at = math.inf if due is None else due[0]
            break
        when, action, obj = due
        store.set_time(when)
        at = max(when, 0)
        if action == "expire":
            expire_session(store, obj)
        elif action == "settle":
            settle_refund(store, obj)
        elif action == "cancel":
            cancel_now(store, obj, at)
        elif action == "trial_will_end":
            obj["_trial_will_end_sent"] = obj["trial_end"]
            store.emit("customer.subscription.trial_will_end", obj)
        elif action == "expire_update":
            expire_pending_update(store, obj)
        elif action == "renew":
            renew(store, obj, at, retry_days)
        elif action == "retry":
            inv = _open_invoice(store, obj)
            assert inv is not None
            retry(store, obj, inv, at, retry_days)
        done += 1
    store.set_time(target)
    return done


def dashboard_subscription(store: Store, cust: JSON, price: JSON, quantity: int = 1) -> JSON:
    """A subscription an operator creates in Stripe's Dashboard for an existing customer: no Checkout Session and
    no metadata of ours, the first invoice charged to the customer's default card at once."""
    now = store.now()
    sub = sb.subscription(
        now,
        cust["id"],
        price["currency"],
        metadata={},
        default_payment_method=cust["invoice_settings"].get("default_payment_method"),
        test_clock=cust.get("test_clock"),
        description=None,
    )
    sub["_anchor"] = now
    sub["_cycles"] = 1
    sub["items"]["data"].append(sb.subscription_item(now, sub["id"], price, quantity, now, now))
    end = period_end_after(sub, 1)
    set_period(sub, now, end)
    store.add(sub)
    store.emit("customer.subscription.created", sub)
    inv = create_invoice(store, cust, sub, "subscription_create", now, end, now, now)
    if attempt_payment(store, inv, cust) and sub["status"] == "incomplete":
        sub["status"] = "active"
        store.emit("customer.subscription.updated", sub, {"status": "incomplete"})
    return sub


def mark_uncollectible(store: Store, inv: JSON) -> None:
    """Stripe's "Mark uncollectible" on an open invoice: no more payment attempts."""
    previous = {"status": inv["status"]}
    inv["status"] = "uncollectible"
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["marked_uncollectible_at"] = store.now()
    store.emit("invoice.marked_uncollectible", inv, previous)
    store.emit("invoice.updated", inv, previous)


def delete_customer(store: Store, cust: JSON) -> None:
    """Delete a customer as Stripe does: its live subscriptions end now, the id answers `deleted: true`."""
    for sub in store.all("subscription"):
        if sub["customer"] == cust["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
            cancel_now(store, sub, store.now())
    store.delete("customer", cust["id"])
    store.objects.setdefault("deleted_customer", {})[cust["id"]] = {"id": cust["id"], "object": "deleted_customer"}
    store.emit("customer.deleted", cust)
