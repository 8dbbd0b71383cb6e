"""Stripe refunds -> our refund rows, and the invoice's refunded amount made equal to the charge's.

A refund we issued carries our refund id in `metadata.refund_id`: its webhook adopts our row. A refund made in
Stripe's Dashboard has no metadata of ours: it becomes a new refund row on the invoice the charge paid (found
through the charge's payment intent and its invoice payment), so the books match Stripe.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.invoices import stripe_sync as invoices_sync
from payment.models import Invoice, Refund
from payment.models.billing import REFUND_STATUSES
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.stripe.sync import Changes, SyncError, older_than_stored


async def _row_for(session: AsyncSession, invoice: Invoice, state: reader.RefundState, *, actor: str) -> Refund:
    row: Refund | None = await session.scalar(
        select(Refund).where(Refund.stripe_refund_id == state.id).with_for_update()
    )
    if row is not None:
        return row
    if state.our_refund_id is not None:
        row = await session.scalar(select(Refund).where(Refund.id == state.our_refund_id).with_for_update())
        if row is not None:
            if row.invoice_id != invoice.id:
                raise SyncError(f"Stripe refund {state.id} names our refund #{row.id}, which is for another invoice.")
            if row.stripe_refund_id is None:
                row.stripe_refund_id = state.id
                return row
            raise SyncError(
                f"Stripe refund {state.id} names our refund #{row.id}, already linked to {row.stripe_refund_id}."
            )
    # made outside our admin (Stripe's Dashboard): record it so the books match Stripe
    row = Refund(
        invoice_id=invoice.id,
        amount_cents=state.amount,
        currency=invoice.currency,
        reason=(state.reason or "Refunded in Stripe's Dashboard")[:2000],
        status="pending",
        stripe_refund_id=state.id,
        created_by=actor,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="refund.recorded_from_stripe",
        entity_type="refund",
        entity_id=row.id,
        details={
            "invoice_id": invoice.id,
            "stripe_refund_id": state.id,
            "amount_cents": state.amount,
            "currency": invoice.currency,
        },
    )
    return row


async def upsert_from_stripe(
    session: AsyncSession, refund: JSON, invoice: Invoice, *, actor: str
) -> tuple[Refund, Changes]:
    """Make our refund of this invoice equal to Stripe's refund: adopt ours by `metadata.refund_id`, else record
    a new one (a Dashboard refund); status, success time and failure reason follow Stripe."""
    state = reader.refund(refund)
    if state.amount <= 0:
        raise SyncError(f"Stripe refund {state.id} has no amount.")
    row = await _row_for(session, invoice, state, actor=actor)
    changes = Changes()
    status = state.status if state.status in REFUND_STATUSES else "pending"
    changes.set(row, "status", status)
    changes.set(row, "succeeded_at", (row.succeeded_at or state.created) if status == "succeeded" else None)
    if status == "failed":
        changes.set(row, "failure_reason", (state.failure_reason or "failed")[:1000])
    await session.flush()
    return row, changes


async def reconcile_charge(
    session: AsyncSession, gateway: StripeGateway, charge: JSON, *, actor: str, event_at: datetime | None = None
) -> Invoice | None:
    """Make our refunds of the invoice this charge paid, and the invoice's refunded amount and status, equal to
    the charge's refunds on Stripe; None when no invoice of ours was paid by the charge."""
    state = reader.charge(charge)
    invoice = await invoices_sync.paid_by(session, gateway, state, actor=actor, event_at=event_at)
    if invoice is None:
        return None
    if older_than_stored(gateway, invoice.stripe_charge_fetch_ticket):
        return invoice  # a snapshot of the charge asked for later is applied already
    invoice.stripe_charge_fetch_ticket = gateway.fetch_ticket or invoice.stripe_charge_fetch_ticket
    refunds = state.refunds
    if refunds is None:  # since 2022-11-15 a charge embeds its refunds only when expanded
        refunds = reader.list_data(await gateway.list_refunds({"charge": state.id, "limit": 100}))
    changed: list[str] = []
    for refund in refunds:
        row, changes = await upsert_from_stripe(session, refund, invoice, actor=actor)
        if changes.values:
            changed.append(str(row.stripe_refund_id))
    refunded = min(state.amount_refunded, invoice.amount_cents)
    before = (invoice.amount_refunded_cents, invoice.status)
    invoice.amount_refunded_cents = refunded
    invoice.status = invoices_sync.status_with_refunds(invoice.status, invoice.amount_cents, refunded)
    await session.flush()
    if changed or before != (invoice.amount_refunded_cents, invoice.status):
        await audit.record(
            session,
            actor=actor,
            action="invoice.refunds_reconciled",
            entity_type="invoice",
            entity_id=invoice.id,
            details={
                "stripe_charge_id": state.id,
                "refunds": changed,
                "amount_refunded_cents": refunded,
                "status": invoice.status,
            },
        )
    return invoice
