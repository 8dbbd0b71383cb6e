"""A card update closes the case: when the end user saves a new default card (Stripe's portal, or our billing page
through it), each open failed invoice is charged again at once with it, instead of waiting for Stripe's next retry.

The webhook (`customer.updated`) only queues the retry, in its transaction, as an outbox message (kind
`invoice_retry`, one per invoice and card, so duplicated or replayed events retry once); a job makes the Stripe call
outside any transaction with an idempotency key per message (a worker that dies mid-call repeats the same request,
which Stripe answers from its record), then maps the invoice at once: a good card closes the case and queues the
receipt; a declined one keeps the case open with the new decline message and sends no second payment-failed notice
(that notice is once per invoice).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.db import Database
from payment.errors import StripeError
from payment.invoices import stripe_sync as invoices_sync
from payment.models import Customer, DunningCase, Invoice
from payment.outbox import service as outbox
from payment.outbox.delivery import Channel, Claimed, Outcome, deliver_due
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON

KIND = "invoice_retry"
EVENT_TYPE = "invoice.pay"
# Stripe could not be asked (network, rate limit, outage, our key): try again later. Any other answer is final.
TRANSIENT_CODES = ("stripe_unreachable", "stripe_rate_limited", "stripe_unavailable", "stripe_auth")


def target_of(invoice_id: int) -> str:
    return f"invoice:{invoice_id}"


async def may_retry(session: AsyncSession, stripe_customer_id: str) -> bool:
    """Whether this Stripe customer is ours and has an open case on a failed invoice (else a card update changes
    nothing here, and Stripe need not be asked)."""
    found = await session.scalar(
        select(DunningCase.id)
        .join(Customer, Customer.id == DunningCase.customer_id)
        .join(Invoice, Invoice.id == DunningCase.invoice_id)
        .where(
            Customer.stripe_customer_id == stripe_customer_id,
            DunningCase.closed_at.is_(None),
            Invoice.status == "payment_failed",
        )
        .limit(1)
    )
    return found is not None


async def card_updated(session: AsyncSession, stripe_customer: JSON, *, actor: str) -> int:
    """The customer's default card is now `invoice_settings.default_payment_method`: queue one immediate retry of
    each open failed invoice whose last attempt was declined on another card; audited. Returns how many."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    card = reader.customer_payment_method_id(stripe_customer)
    stripe_customer_id = reader.id_of(stripe_customer.get("id"))
    if card is None or stripe_customer_id is None or stripe_customer.get("deleted"):
        return 0
    customer = await session.scalar(select(Customer).where(Customer.stripe_customer_id == stripe_customer_id))
    if customer is None:
        return 0
    rows = (
        await session.execute(
            select(DunningCase, Invoice)
            .join(Invoice, Invoice.id == DunningCase.invoice_id)
            .where(
                DunningCase.customer_id == customer.id,
                DunningCase.closed_at.is_(None),
                Invoice.status == "payment_failed",
                Invoice.stripe_invoice_id.is_not(None),
            )
            .order_by(DunningCase.id)
        )
    ).all()
    queued = 0
    for case, invoice in rows:
        if invoice.failed_payment_method_id == card:  # the card that was declined: Stripe's own schedule retries it
            continue
        added = await outbox.add(
            session,
            kind=KIND,
            target=target_of(invoice.id),
            dedupe_key=f"card:{card}",
            event_type=EVENT_TYPE,
            ordering_key="retry",
            position=await outbox.next_number(session, f"{KIND}:{invoice.id}"),
            payload={
                "invoiceId": invoice.id,
                "stripeInvoiceId": invoice.stripe_invoice_id,
                "paymentMethod": card,
                "customerId": customer.id,
                "caseId": case.id,
            },
        )
        if not added:
            continue
        queued += 1
        await audit.record(
            session,
            actor=actor,
            action="dunning.card_updated",
            entity_type="customer",
            entity_id=customer.id,
            details={
                "case_id": case.id,
                "invoice_id": invoice.id,
                "stripe_invoice_id": invoice.stripe_invoice_id,
                "payment_method": card,
                "declined_payment_method": invoice.failed_payment_method_id,
                "by": "end user (new default card)",
            },
        )
    return queued


async def _record_answer(db: Database, gateway: StripeGateway, message: Claimed, answer: str) -> None:
    """Map the invoice as Stripe has it now (closing the case, or counting the declined attempt), audited."""
    async with db.transaction() as session:
        invoice, _ = await invoices_sync.apply_current(
            session, gateway, str(message.payload["stripeInvoiceId"]), actor=audit.SYSTEM
        )
        await audit.record(
            session,
            actor=audit.SYSTEM,
            action="dunning.card_retried",
            entity_type="customer",
            entity_id=message.payload.get("customerId"),
            details={
                "case_id": message.payload.get("caseId"),
                "invoice_id": invoice.id,
                "payment_method": message.payload.get("paymentMethod"),
                "answer": answer,
                "invoice_status": invoice.status,
            },
        )


def retry_channel(db: Database, gateway: StripeGateway) -> Channel:
    """Immediate retries as this deployment makes them: `POST /v1/invoices/{id}/pay` with the new card."""

    async def send(message: Claimed) -> Outcome:
        invoice_id = str(message.payload["stripeInvoiceId"])
        try:
            await gateway.pay_invoice(
                invoice_id,
                {"payment_method": str(message.payload["paymentMethod"])},
                idempotency_key=f"aquoris-card-retry-{message.message_id}",
            )
            answer = "paid"
        except StripeError as exc:
            if exc.code in TRANSIENT_CODES:
                return Outcome(ok=False, error=exc.message)
            answer = exc.message  # declined, or no longer open (paid meanwhile, voided): a final answer either way
        await _record_answer(db, gateway, message, answer)
        return Outcome(ok=True, error=None if answer == "paid" else answer)

    async def nothing_paused(session: AsyncSession) -> set[str]:
        return set()

    async def no_health(session: AsyncSession, target: str, outcome: Outcome, now: datetime) -> None:
        return None

    return Channel(
        kind=KIND,
        send=send,
        paused_targets=nothing_paused,
        on_outcome=no_health,
        retry_base=timedelta(seconds=5),
        lease=timedelta(seconds=60),
    )


async def retry_now(db: Database, gateway: StripeGateway) -> int:
    """The job body: make the queued card retries."""
    return await deliver_due(db, retry_channel(db, gateway))
