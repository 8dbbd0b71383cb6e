"""Dunning and notices from the rows a transaction changed, whoever changed them (Stripe sync, admin, jobs, API).

A flush listener notes invoices and subscriptions whose status moved; `record_changes`, run by the transaction
boundary before the commit (and before the webhook capture, so an entitlement event sees the case), opens and
closes dunning cases and queues the end user's notices in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from payment.dunning import cases, notices
from payment.models import Customer, Invoice, Plan, Subscription, utcnow

_CHANGES = "dunning.changes"
ENDED_STATUSES = ("canceled", "expired", "incomplete_expired")
PAID_STATUSES = ("paid", "partially_refunded", "refunded")
RECEIPT_WINDOW = timedelta(days=7)

Changes = dict[tuple[str, int], set[str]]


def _history(obj: object, name: str) -> tuple[Sequence[Any], Sequence[Any]]:
    history = inspect(obj).attrs[name].history
    return history.deleted or (), history.added or ()


def _note(changes: Changes, obj: object, *, new: bool) -> None:
    if isinstance(obj, Invoice):
        old, added = _history(obj, "status")
        was = None if new or not old else old[0]
        status = added[-1] if added else inspect(obj).dict.get("status")  # loaded only: no SQL inside a flush
        kinds = changes.setdefault(("invoice", obj.id), set())
        if status == "payment_failed":
            old_attempts, new_attempts = _history(obj, "attempt_count")
            if added or new or (new_attempts and old_attempts and new_attempts[-1] > old_attempts[0]):
                kinds.add("failed")
        elif added and status in PAID_STATUSES and was not in PAID_STATUSES:
            kinds.add("paid")
        elif added and status == "void":
            kinds.add("void")
    elif isinstance(obj, Subscription) and not new:  # one first seen already ended or ending is history, not news
        kinds = changes.setdefault(("subscription", obj.id), set())
        old, added = _history(obj, "status")
        if added and added[-1] in ENDED_STATUSES and not (old and old[0] in ENDED_STATUSES):
            kinds.add("ended")
        elif added and added[-1] in ("active", "trialing") and old and old[0] in cases.DELINQUENT_STATUSES:
            kinds.add("recovered")
        elif added and added[-1] in cases.DELINQUENT_STATUSES and not (old and old[0] in cases.DELINQUENT_STATUSES):
            kinds.add("delinquent")
        _, cancel = _history(obj, "cancel_at_period_end")
        if cancel and cancel[-1] is True:
            kinds.add("ending")


def _collect(session: Session, _flush_context: UOWTransaction) -> None:
    changes: Changes = session.info.setdefault(_CHANGES, {})
    for obj in session.new:
        _note(changes, obj, new=True)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            _note(changes, obj, new=False)


def _forget(session: Session, *args: Any) -> None:
    session.info.pop(_CHANGES, None)


def install() -> None:
    """Listen to every ORM session's flushes (once per process)."""
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_rollback", _forget)


def _discount(invoice: Invoice) -> dict[str, int]:
    """A discounted invoice's subtotal and discount, for the receipt to show beside its total; nothing without one."""
    if invoice.discount_cents <= 0 or invoice.subtotal_cents is None:
        return {}
    return {"subtotalCents": invoice.subtotal_cents, "discountCents": invoice.discount_cents}


async def _invoice(session: AsyncSession, invoice_id: int, kinds: set[str]) -> None:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        return
    if "failed" in kinds and invoice.subscription_id is not None:
        await cases.record_failure(session, invoice)
    if "void" in kinds:
        await cases.close(session, reason="voided", invoice_id=invoice.id)
    if "paid" in kinds:
        await cases.close(session, reason="paid", invoice_id=invoice.id)
        if invoice.paid_at is not None and invoice.paid_at < utcnow() - RECEIPT_WINDOW:
            return  # an old payment recorded late (an import, a catch-up): no receipt months afterwards
        if invoice.amount_cents <= 0:
            return  # nothing was charged (a trial's first invoice, a 100% discount): no "receipt for THB 0.00"
        customer = await session.get_one(Customer, invoice.customer_id)
        sub = await session.get(Subscription, invoice.subscription_id) if invoice.subscription_id else None
        plan = await session.get(Plan, sub.plan_id) if sub is not None else None
        paid_at = invoice.paid_at.isoformat() if invoice.paid_at else None
        await notices.queue(
            session,
            customer,
            notices.RECEIPT,
            key=f"invoice:{invoice.id}",
            data={
                "invoiceId": invoice.id,
                "amountCents": invoice.amount_cents,
                "currency": invoice.currency,
                "paidAt": paid_at,
                "plan": plan.name if plan else None,
                "reference": invoice.reference_number or invoice.stripe_invoice_id,
                "periodEnd": invoice.period_end.isoformat() if invoice.period_end else None,
                **_discount(invoice),
            },
            app_id=await notices.link_app_id(session, customer, sub),
        )


async def _subscription(session: AsyncSession, subscription_id: int, kinds: set[str]) -> None:
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        return
    if "recovered" in kinds:
        await cases.close(session, reason="recovered", subscription_id=sub.id)
    if "delinquent" in kinds:
        await cases.subscription_delinquent(session, sub)
    if not kinds & {"ended", "ending"}:
        return
    customer = await session.get_one(Customer, sub.customer_id)
    plan = await session.get_one(Plan, sub.plan_id)
    app_id = await notices.link_app_id(session, customer, sub)
    if "ended" in kinds:
        await cases.close(session, reason="ended", subscription_id=sub.id)
        ended = sub.ended_at or sub.canceled_at
        await notices.queue(
            session,
            customer,
            notices.SUBSCRIPTION_CANCELED,
            key=f"subscription:{sub.id}",
            data={"plan": plan.name, "endedAt": ended.isoformat() if ended else None},
            app_id=app_id,
        )
    elif "ending" in kinds and sub.cancel_at_period_end and sub.current_period_end is not None:
        end = sub.current_period_end.isoformat()
        await notices.queue(
            session,
            customer,
            notices.SUBSCRIPTION_ENDING,
            key=f"subscription:{sub.id}:{end}",
            data={"plan": plan.name, "endsAt": end},
            app_id=app_id,
        )


async def record_changes(session: AsyncSession) -> None:
    """Open, count and close dunning cases and queue notices for this transaction's changes (run before commit)."""
    await session.flush()
    changes: Changes | None = session.info.pop(_CHANGES, None)
    if not changes:
        return
    for (entity, pk), kinds in sorted(changes.items()):
        if not kinds:
            continue
        if entity == "invoice":
            await _invoice(session, pk, kinds)
        else:
            await _subscription(session, pk, kinds)
    await session.flush()
    session.info.pop(_CHANGES, None)  # our own writes are not changes to act on
