"""Turning the changes of a transaction into webhook events, written to the outbox before it commits.

Changes are noticed where every path writes them, the ORM flush (Stripe sync, admin actions, jobs, the API all
go through it), so no service has to remember to announce anything: a flush listener notes which subscriptions,
invoices, refunds and customers changed and how, and `record_changes`, run by the transaction boundary just
before the commit, builds the events from the rows' final state and queues one message per interested endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from payment.app_webhooks import catalogue as cat
from payment.billing import entitlements
from payment.models import App, Customer, Invoice, Plan, Refund, Subscription, WebhookEndpoint, utcnow
from payment.outbox import service as outbox

KIND = "webhook"
_CHANGES = "app_webhooks.changes"
ENDED_STATUSES = ("canceled", "expired", "incomplete_expired")
PAID_STATUSES = ("paid", "partially_refunded", "refunded")
SUBSCRIPTION_FIELDS = (
    "status",
    "plan_id",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "trial_end",
    "pending_plan_id",  # a downgrade scheduled or withdrawn changes the entitlement's pendingChange
    "pending_change_at",
)
CUSTOMER_FIELDS = ("email", "name", "locale")

Changes = dict[tuple[str, int], set[str]]


def _history(obj: object, name: str) -> tuple[Sequence[Any], Sequence[Any]]:
    """(old values, new values) of an attribute in the flush under way."""
    history = inspect(obj).attrs[name].history
    return history.deleted or (), history.added or ()


def _note_new(changes: Changes, obj: object) -> None:
    if isinstance(obj, Subscription):
        changes.setdefault(("subscription", obj.id), set()).add("created")
        if obj.status in ENDED_STATUSES:
            changes[("subscription", obj.id)].add("canceled")
    elif isinstance(obj, Invoice) and obj.status in ("paid", "payment_failed"):
        changes.setdefault(("invoice", obj.id), set()).add(obj.status)
    elif isinstance(obj, Refund) and obj.status == "succeeded":
        changes.setdefault(("refund", obj.id), set()).add("succeeded")


def _note_dirty(changes: Changes, obj: object) -> None:
    if isinstance(obj, Subscription):
        if any(_history(obj, name)[1] for name in SUBSCRIPTION_FIELDS):
            kinds = changes.setdefault(("subscription", obj.id), set())
            kinds.add("updated")
            old, new = _history(obj, "status")
            if new and new[-1] in ENDED_STATUSES and not (old and old[0] in ENDED_STATUSES):
                kinds.add("canceled")
    elif isinstance(obj, Invoice):
        old, new = _history(obj, "status")
        was = old[0] if old else None
        if new and new[-1] == "paid" and was not in PAID_STATUSES:
            changes.setdefault(("invoice", obj.id), set()).add("paid")
        if new and new[-1] == "payment_failed":
            changes.setdefault(("invoice", obj.id), set()).add("payment_failed")
        old_attempts, new_attempts = _history(obj, "attempt_count")
        status = inspect(obj).dict.get("status")  # what is loaded only: no SQL inside a flush
        if (
            not new
            and status == "payment_failed"
            and new_attempts
            and old_attempts
            and new_attempts[-1] > old_attempts[0]
        ):  # failed again
            changes.setdefault(("invoice", obj.id), set()).add("payment_failed")
    elif isinstance(obj, Refund):
        old, new = _history(obj, "status")
        if new and new[-1] == "succeeded" and not (old and old[0] == "succeeded"):
            changes.setdefault(("refund", obj.id), set()).add("succeeded")
    elif isinstance(obj, Customer) and any(_history(obj, name)[1] for name in CUSTOMER_FIELDS):
        changes.setdefault(("customer", obj.id), set()).add("updated")


def _collect(session: Session, _flush_context: UOWTransaction) -> None:
    changes: Changes = session.info.setdefault(_CHANGES, {})
    for obj in session.new:
        _note_new(changes, obj)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            _note_dirty(changes, obj)


def _forget(session: Session, *args: Any) -> None:
    session.info.pop(_CHANGES, None)


def note_entitlement_change(session: AsyncSession, customer_id: int) -> None:
    """A customer's entitlement may have changed with no row of theirs changing (a grace period ran out or was
    extended): compare it with the last one sent at this transaction's end."""
    session.info.setdefault(_CHANGES, {}).setdefault(("entitlement", customer_id), set()).add("changed")


def install() -> None:
    """Listen to every ORM session's flushes (once per process)."""
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_rollback", _forget)


@dataclass
class _Event:
    type: str
    customer: Customer
    data: dict[str, Any]
    key: str
    app_id: int | None = None  # None: of interest to every app
    subscription_id: int | None = None


async def _build_events(session: AsyncSession, changes: Changes) -> tuple[list[_Event], set[int]]:
    """The events of these changes, in a stable order, and the customers whose entitlement may have changed."""
    found: list[tuple[int, _Event]] = []
    affected: set[int] = set()
    for (entity, pk), kinds in changes.items():
        if entity == "entitlement":
            affected.add(pk)
        elif entity == "customer":
            customer = await session.get(Customer, pk)
            if customer is not None:
                found.append((0, _Event(cat.CUSTOMER_UPDATED, customer, cat.customer_data(customer), f"customer:{pk}")))
        elif entity == "subscription":
            sub = await session.get(Subscription, pk)
            if sub is None:
                continue
            plan, customer = await session.get_one(Plan, sub.plan_id), await session.get_one(Customer, sub.customer_id)
            affected.add(customer.id)
            data = cat.subscription_data(sub, plan, customer)
            types = [cat.SUBSCRIPTION_CREATED] if "created" in kinds else []
            if "canceled" in kinds:
                types.append(cat.SUBSCRIPTION_CANCELED)
            elif not types:
                types.append(cat.SUBSCRIPTION_UPDATED)
            for event_type in types:
                found.append((1, _Event(event_type, customer, data, f"subscription:{pk}", plan.app_id, sub.id)))
        elif entity in ("invoice", "refund"):
            refund = await session.get(Refund, pk) if entity == "refund" else None
            invoice = await session.get(Invoice, refund.invoice_id if refund is not None else pk)
            if invoice is None:
                continue
            customer = await session.get_one(Customer, invoice.customer_id)
            sub = await session.get(Subscription, invoice.subscription_id) if invoice.subscription_id else None
            app_id = (await session.get_one(Plan, sub.plan_id)).app_id if sub is not None else None
            if refund is not None:
                found.append(
                    (
                        4,
                        _Event(
                            cat.REFUND_SUCCEEDED,
                            customer,
                            cat.refund_data(refund, invoice, customer),
                            f"refund:{pk}",
                            app_id,
                            invoice.subscription_id,
                        ),
                    )
                )
                continue
            for rank, kind, event_type in (
                (2, "payment_failed", cat.INVOICE_PAYMENT_FAILED),
                (3, "paid", cat.INVOICE_PAID),
            ):
                if kind in kinds:
                    found.append(
                        (
                            rank,
                            _Event(
                                event_type,
                                customer,
                                cat.invoice_data(invoice, customer),
                                f"invoice:{pk}",
                                app_id,
                                invoice.subscription_id,
                            ),
                        )
                    )
    found.sort(key=lambda item: (item[0], item[1].key))
    return [e for _, e in found], affected


def _wants(endpoint: WebhookEndpoint, event_type: str, app_id: int | None) -> bool:
    return event_type in endpoint.event_types and (app_id is None or endpoint.app_id == app_id)


async def _queue(session: AsyncSession, ev: _Event, endpoints: list[WebhookEndpoint], *, at: Any) -> None:
    receivers = [e for e in endpoints if _wants(e, ev.type, ev.app_id)]
    if not receivers:
        return
    ordering_key = f"customer:{ev.customer.id}"
    position = await outbox.next_number(session, ordering_key)
    sequence = await outbox.next_number(session, f"subscription:{ev.subscription_id}") if ev.subscription_id else None
    payload = cat.envelope(ev.type, at, ev.data, subscription_id=ev.subscription_id, sequence=sequence)
    for endpoint in receivers:
        await outbox.add(
            session,
            kind=KIND,
            target=str(endpoint.id),
            dedupe_key=f"{ev.type}:{ev.key}:{position}",
            event_type=ev.type,
            ordering_key=ordering_key,
            position=position,
            payload=payload,
        )


async def _entitlement_events(
    session: AsyncSession, customer_ids: set[int], endpoints: list[WebhookEndpoint]
) -> list[tuple[_Event, list[WebhookEndpoint]]]:
    """One `entitlement.changed` per customer and app whose entitlement differs from the last one sent."""
    wanting = [e for e in endpoints if cat.ENTITLEMENT_CHANGED in e.event_types]
    result: list[tuple[_Event, list[WebhookEndpoint]]] = []
    for app_id in sorted({e.app_id for e in wanting}):
        app = await session.get_one(App, app_id)
        free = entitlements.document(
            await entitlements.current(session, None, app), external_user_id="", app_slug=app.slug
        )
        for customer_id in sorted(customer_ids):
            customer = await session.get_one(Customer, customer_id)
            ent = await entitlements.current(session, customer, app)
            doc = entitlements.document(ent, external_user_id=customer.external_user_id, app_slug=app.slug)
            changed: list[WebhookEndpoint] = []
            for endpoint in (e for e in wanting if e.app_id == app_id):
                last = await outbox.latest_payload(
                    session,
                    kind=KIND,
                    target=str(endpoint.id),
                    ordering_key=f"customer:{customer_id}",
                    event_type=cat.ENTITLEMENT_CHANGED,
                )
                before = last["data"] if last else {**free, "externalUserId": customer.external_user_id}
                if before != doc:
                    changed.append(endpoint)
            if changed:
                sub_id = ent.subscription.id if ent.subscription is not None else None
                result.append(
                    (
                        _Event(
                            cat.ENTITLEMENT_CHANGED,
                            customer,
                            doc,
                            f"customer:{customer_id}:app:{app_id}",
                            app_id,
                            sub_id,
                        ),
                        changed,
                    )
                )
    return result


async def record_changes(session: AsyncSession) -> None:
    """Queue the webhook events of this transaction's changes for every enabled endpoint that wants them (run
    just before the commit; nothing is queued when no endpoint is enabled)."""
    await session.flush()
    changes: Changes | None = session.info.pop(_CHANGES, None)
    if not changes:
        return
    endpoints = list(
        (
            await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled).order_by(WebhookEndpoint.id))
        ).all()
    )
    if not endpoints:
        return
    at = utcnow()
    events, affected = await _build_events(session, changes)
    for ev in events:
        await _queue(session, ev, endpoints, at=at)
    for ev, receivers in await _entitlement_events(session, affected, endpoints):
        await _queue(session, ev, receivers, at=at)
    session.info.pop(_CHANGES, None)  # what the queueing itself flushed is ours, not a change to announce
