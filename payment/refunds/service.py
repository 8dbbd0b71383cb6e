"""Refunds of paid invoices, and the optional immediate cancellation that follows one.

refundable = amount - amount_refunded - pending refunds, checked with the invoice row locked so two submissions
cannot both pass. A Stripe invoice's refund is first recorded `pending` and committed, then sent to Stripe outside
any transaction (`send_to_stripe`), and stays pending until the `charge.refunded` webhook confirms it
(`refunds.stripe_sync`); a manual invoice's refund is a bookkeeping entry, effective at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Database, Transactions
from payment.errors import Conflict, NotFound, PaymentError, ValidationError
from payment.models import Invoice, Refund, utcnow
from payment.payments.service import format_money
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import service as subscriptions

REFUNDABLE_STATUSES = ("paid", "partially_refunded")
# an admin's own send happens right after the commit; older unsent ones were interrupted
RESEND_AFTER = timedelta(minutes=2)
SEND_BATCH = 100


async def get_invoice(session: AsyncSession, invoice_id: int) -> Invoice:
    """The invoice with its customer, or NotFound (read only: `lock_invoice` is for changes)."""
    invoice = await session.get(Invoice, invoice_id, options=[selectinload(Invoice.customer)])
    if invoice is None:
        raise NotFound("This invoice does not exist.")
    return invoice


async def get_refund(session: AsyncSession, refund_id: int) -> Refund:
    """The refund with its invoice and the invoice's customer, or NotFound."""
    refund = await session.get(Refund, refund_id, options=[selectinload(Refund.invoice).selectinload(Invoice.customer)])
    if refund is None:
        raise NotFound("This refund does not exist.")
    return refund


async def lock_invoice(session: AsyncSession, invoice_id: int) -> Invoice:
    """The invoice row, locked so two refunds of it are checked one after the other."""
    invoice = (
        await session.execute(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if invoice is None:
        raise NotFound("This invoice does not exist.")
    return invoice


async def pending_cents(session: AsyncSession, invoice_id: int) -> int:
    """What the invoice's refunds still waiting for Stripe's confirmation add up to."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.invoice_id == invoice_id, Refund.status == "pending"
        )
    )
    return int(total or 0)


async def refundable_cents(session: AsyncSession, invoice: Invoice) -> int:
    """What may still be refunded: the amount less what is refunded and what is pending."""
    if invoice.status not in REFUNDABLE_STATUSES:
        return 0
    return max(0, invoice.amount_cents - invoice.amount_refunded_cents - await pending_cents(session, invoice.id))


def apply_refunded(invoice: Invoice, amount_cents: int) -> None:
    """Count a succeeded refund on the invoice and set its status (partially) refunded."""
    invoice.amount_refunded_cents = min(invoice.amount_cents, invoice.amount_refunded_cents + amount_cents)
    invoice.status = "refunded" if invoice.amount_refunded_cents >= invoice.amount_cents else "partially_refunded"


def check_refund(invoice: Invoice, refundable: int, amount_cents: int, also_cancel: bool) -> int:
    """A refund of `amount_cents` fits what remains refundable of the invoice (`refundable`), and a cancellation
    asked with it has a subscription to cancel; the amount, or a ValidationError naming the field."""
    if amount_cents <= 0:
        raise ValidationError("The refund amount must be more than zero.", field="amount")
    if amount_cents > refundable:
        raise ValidationError(
            f"The refund amount cannot be more than {format_money(refundable, invoice.currency)}, "
            "what remains refundable.",
            field="amount",
        )
    if also_cancel and invoice.subscription_id is None:
        raise ValidationError("This invoice has no subscription to cancel.", field="also_cancel")
    return amount_cents


async def issue(
    session: AsyncSession,
    invoice_id: int,
    *,
    reason: str,
    actor: str,
    amount_cents: int | None = None,
    also_cancel: bool = False,
    ip: str | None = None,
) -> Refund:
    """Refund up to what remains refundable of a paid invoice (default all of it). A manual invoice's refund is
    effective at once; a Stripe invoice's is recorded pending (it counts against what is refundable from now on) and
    the caller, after committing, sends it with `send_to_stripe`."""
    require(actor, Permission.REFUND)
    reason = subscriptions.check_reason(reason)
    invoice = await lock_invoice(session, invoice_id)
    if invoice.status not in REFUNDABLE_STATUSES:
        raise Conflict(f"Only a paid invoice can be refunded; this one is {invoice.status.replace('_', ' ')}.")
    refundable = await refundable_cents(session, invoice)
    if refundable <= 0:
        raise Conflict(
            "Nothing is left to refund on this invoice (refunds already cover it or are pending).", field="amount"
        )
    amount = check_refund(invoice, refundable, refundable if amount_cents is None else amount_cents, also_cancel)
    details: dict[str, Any] = {
        "invoice_id": invoice.id,
        "amount_cents": amount,
        "currency": invoice.currency,
        "reason": reason,
        "also_cancel": also_cancel,
        "source": invoice.source,
    }
    refund = Refund(
        invoice_id=invoice.id,
        amount_cents=amount,
        currency=invoice.currency,
        reason=reason,
        status="pending",
        created_by=actor,
        also_cancel=also_cancel,
    )
    session.add(refund)
    if invoice.source != "stripe":
        refund.status, refund.succeeded_at = "succeeded", utcnow()
        apply_refunded(invoice, amount)
    await session.flush()
    details["status"] = refund.status
    await audit.record(
        session, actor=actor, action="refund.issued", entity_type="refund", entity_id=refund.id, details=details, ip=ip
    )
    return refund


def needs_stripe(refund: Refund) -> bool:
    """A refund recorded for a Stripe invoice and not yet sent (or not yet answered)."""
    return refund.status == "pending" and refund.stripe_refund_id is None and refund.succeeded_at is None


async def _stripe_target(gateway: StripeGateway, invoice: Invoice) -> dict[str, str]:
    """What Stripe refunds: the invoice's charge or payment intent, asked from Stripe (its invoice payments) when
    we have neither yet."""
    if invoice.stripe_charge_id:
        return {"charge": invoice.stripe_charge_id}
    if invoice.stripe_payment_intent_id:
        return {"payment_intent": invoice.stripe_payment_intent_id}
    assert invoice.stripe_invoice_id is not None
    ids = reader.payment_ids(await gateway.retrieve_invoice(invoice.stripe_invoice_id))
    if ids.charge_id:
        return {"charge": ids.charge_id}
    if ids.payment_intent_id:
        return {"payment_intent": ids.payment_intent_id}
    raise Conflict("Stripe has no payment for this invoice to refund.")


async def send_to_stripe(
    db: Database, gateway: StripeGateway, refund_id: int, *, actor: str, ip: str | None = None
) -> Refund:
    """Send a committed pending refund to Stripe, outside any transaction or lock, with our refund id in its
    metadata and an idempotency key derived from it (a resend cannot refund twice); a refusal marks our refund
    failed with Stripe's words (safe to show), so it no longer counts against what is refundable."""
    async with db.session() as session:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise NotFound("This refund does not exist.")
        invoice = await session.get(Invoice, refund.invoice_id)
        assert invoice is not None
        session.expunge_all()
    if invoice.source != "stripe" or not needs_stripe(refund):
        return refund
    try:
        params: dict[str, Any] = {
            **await _stripe_target(gateway, invoice),
            "amount": refund.amount_cents,
            "metadata": {"refund_id": str(refund.id), "invoice_id": str(invoice.id)},
        }
        data = await gateway.create_refund(params, idempotency_key=f"aquoris-refund-{refund.id}")
    except PaymentError as exc:
        return await _record_sent(db, refund_id, None, exc.message, actor=actor, ip=ip)
    return await _record_sent(db, refund_id, reader.refund(data).id, None, actor=actor, ip=ip)


async def send_unsent(
    db: Database, gateway: StripeGateway, *, now: datetime | None = None, limit: int = SEND_BATCH
) -> int:
    """Send again the Stripe refunds recorded but never answered by Stripe (the process stopped between the commit
    and the call); the idempotency key makes a resend of one that did reach Stripe return that same refund."""
    before = (now or utcnow()) - RESEND_AFTER
    async with db.session() as session:
        ids = list(
            await session.scalars(
                select(Refund.id)
                .join(Invoice, Invoice.id == Refund.invoice_id)
                .where(
                    Invoice.source == "stripe",
                    Refund.status == "pending",
                    Refund.stripe_refund_id.is_(None),
                    Refund.created_at < before,
                )
                .order_by(Refund.id)
                .limit(limit)
            )
        )
    for refund_id in ids:
        await send_to_stripe(db, gateway, refund_id, actor=audit.SYSTEM)
    return len(ids)


async def _record_sent(
    db: Database, refund_id: int, stripe_refund_id: str | None, error: str | None, *, actor: str, ip: str | None
) -> Refund:
    async with db.transaction() as session:
        refund = await session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
        assert refund is not None
        details: dict[str, str | None]
        if error is not None:
            if needs_stripe(refund):
                refund.status, refund.failure_reason = "failed", error[:1000]
            action, details = "refund.failed", {"error": error}
        else:
            # the webhook may have adopted our row already (it can arrive before this answer)
            refund.stripe_refund_id = refund.stripe_refund_id or stripe_refund_id
            action, details = "refund.sent", {"stripe_refund_id": stripe_refund_id}
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action=action,
            entity_type="refund",
            entity_id=refund.id,
            details={"invoice_id": refund.invoice_id, **details},
            ip=ip,
        )
        session.expunge(refund)
        return refund


async def _cancel_subscription_of(
    db: Transactions, refund_id: int, *, gateway: StripeGateway, actor: str, ip: str | None, retry: bool
) -> Refund:
    """End the refund's subscription now (a Stripe turn: no transaction of ours is open while Stripe answers),
    then record on the refund, in a short transaction, whether that worked."""
    async with db.session() as session:
        refund = await session.get(Refund, refund_id)
        invoice = await session.get(Invoice, refund.invoice_id) if refund is not None else None
        if invoice is None or invoice.subscription_id is None:
            raise Conflict("This refund's invoice has no subscription to cancel.")
        subscription_id = invoice.subscription_id
        reason = f"Canceled with refund #{refund_id}: {refund.reason if refund else ''}"
        ended = (await subscriptions.get(session, subscription_id)).status in subscriptions.ENDED_STATUSES
    error: str | None = None
    if not ended:
        try:
            await subscriptions.cancel_now(db, subscription_id, gateway=gateway, actor=actor, ip=ip, reason=reason)
        except PaymentError as exc:
            async with db.session() as session:
                ended_meanwhile = (await subscriptions.get(session, subscription_id)).status
            if ended_meanwhile not in subscriptions.ENDED_STATUSES:
                error = exc.message
    async with db.transaction() as session:
        locked = await session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
        assert locked is not None
        locked.cancel_outcome = "failed" if error else "succeeded"
        locked.cancel_error = error[:1000] if error else None
        locked.updated_at = utcnow()  # a new attempt is a new state, even when it failed the same way again
        await session.flush()
        action = "refund.cancellation_retried" if retry else "refund.cancellation"
        await audit.record(
            session,
            actor=actor,
            action=action,
            entity_type="refund",
            entity_id=locked.id,
            details={"subscription_id": subscription_id, "outcome": locked.cancel_outcome, "error": error},
            ip=ip,
        )
        return locked


async def cancel_after_refund(
    db: Transactions, refund_id: int, *, gateway: StripeGateway, actor: str, ip: str | None = None
) -> Refund:
    """After a committed refund with "also cancel", end its subscription now and record whether that worked;
    a failed cancellation is recorded (not raised) so the refund stands and an admin can retry."""
    require(actor, Permission.REFUND)
    async with db.session() as session:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise NotFound("This refund does not exist.")
        if refund.cancel_outcome is not None:
            return refund
    return await _cancel_subscription_of(db, refund_id, gateway=gateway, actor=actor, ip=ip, retry=False)


async def retry_cancellation(
    db: Transactions, refund_id: int, *, gateway: StripeGateway, actor: str, ip: str | None = None
) -> Refund:
    """Try again to cancel the subscription of a refund whose immediate cancellation failed (or never ran)."""
    require(actor, Permission.REFUND)
    async with db.session() as session:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise NotFound("This refund does not exist.")
        # None: the refund committed but the process stopped before its cancellation ran
        if not refund.also_cancel or refund.cancel_outcome not in ("failed", None):
            raise Conflict("This refund has no failed cancellation to retry.")
    return await _cancel_subscription_of(db, refund_id, gateway=gateway, actor=actor, ip=ip, retry=True)
