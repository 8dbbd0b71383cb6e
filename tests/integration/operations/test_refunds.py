"""Refunds: Stripe ones recorded pending, sent to Stripe after commit with our id, confirmed by `charge.refunded`;
manual ones at once; never more than what is refundable; "also cancel" keeps the refund when the cancellation fails
and lets an admin retry it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, Role
from payment.config import Settings
from payment.errors import Conflict, PaymentError, ValidationError
from payment.models import AuditLog, Invoice, Refund, utcnow
from payment.refunds import service as refunds
from payment.refunds import stripe_sync as refunds_sync
from payment.runtime import Services
from payment.stripe.gateway import StripeGateway
from payment.submissions import service as submissions
from tests.support import factories
from tests.support.db import in_db
from tests.support.stripe import StripeSetup, inject_fault, paid_stripe_subscription, sandbox_control

ACTOR = AdminActor(2, Role.OWNER)


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)


async def _refund_rows(db: AsyncSession, invoice_id: int) -> list[tuple[int, str]]:
    rows = await db.execute(
        select(Refund.amount_cents, Refund.status).where(Refund.invoice_id == invoice_id).order_by(Refund.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _paid(services: Services, sandbox: str) -> StripeSetup:
    async with services.db.transaction() as session:
        return await paid_stripe_subscription(session, services.stripe, sandbox)


async def _issue(services: Services, invoice_id: int, **kwargs: Any) -> Refund:
    async with services.db.transaction() as session:
        return await refunds.issue(session, invoice_id, actor=ACTOR, **{"reason": "Service issue", **kwargs})


async def _rows(services: Services, invoice_id: int) -> list[tuple[int, str]]:
    async with services.db.session() as session:
        return await _refund_rows(session, invoice_id)


async def _invoice(services: Services, invoice_id: int) -> Invoice:
    async with services.db.session() as session:
        found = await session.get(Invoice, invoice_id)
        assert found is not None
        return found


async def test_stripe_refund_pending_sent_with_our_id_then_confirmed_by_the_charge(
    services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    invoice_id = setup.invoice.id
    assert setup.invoice.stripe_charge_id is not None and setup.invoice.stripe_payment_intent_id is not None
    first = await _issue(services, invoice_id, amount_cents=10000)
    # recorded and committed before Stripe is called: it already counts against what is refundable
    assert (first.status, first.stripe_refund_id, first.created_by) == ("pending", None, ACTOR)
    async with services.db.session() as session:
        assert await refunds.refundable_cents(session, await _invoice(services, invoice_id)) == 19900
    with pytest.raises(ValidationError, match=r"cannot be more than THB 199\.00"):
        await _issue(services, invoice_id, amount_cents=19901)
    sent = await refunds.send_to_stripe(services.db, services.stripe, first.id, actor=ACTOR)
    assert sent.status == "pending" and sent.stripe_refund_id is not None
    on_stripe = await services.stripe.list_refunds({"charge": setup.invoice.stripe_charge_id})
    assert [(r["id"], r["amount"], r["metadata"]["refund_id"]) for r in on_stripe["data"]] == [
        (sent.stripe_refund_id, 10000, str(first.id))
    ]
    second = await _issue(services, invoice_id, reason="Rest of it")
    assert second.amount_cents == 19900
    await refunds.send_to_stripe(services.db, services.stripe, second.id, actor=ACTOR)
    with pytest.raises(Conflict, match="Nothing is left to refund"):
        await _issue(services, invoice_id)
    # what the charge.refunded webhook does: adopt both of ours by metadata, none added
    charge = await services.stripe.retrieve_charge(setup.invoice.stripe_charge_id)
    async with services.db.transaction() as session:
        await refunds_sync.reconcile_charge(session, services.stripe, charge, actor="stripe")
    assert await _rows(services, invoice_id) == [(10000, "succeeded"), (19900, "succeeded")]
    invoice = await _invoice(services, invoice_id)
    assert (invoice.amount_refunded_cents, invoice.status) == (29900, "refunded")
    async with services.db.session() as session:
        actions = list(
            await session.scalars(
                select(AuditLog.action)
                .where(AuditLog.entity_type == "refund", AuditLog.entity_id == str(first.id))
                .order_by(AuditLog.id)
            )
        )
    assert actions == ["refund.issued", "refund.sent"]


async def test_sending_twice_makes_one_stripe_refund(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    refund = await _issue(services, setup.invoice.id, amount_cents=500)
    a = await refunds.send_to_stripe(services.db, services.stripe, refund.id, actor=ACTOR)
    b = await refunds.send_to_stripe(services.db, services.stripe, refund.id, actor=ACTOR)
    assert a.stripe_refund_id == b.stripe_refund_id is not None
    # the key is derived from our refund id: a resend whose first answer was lost gets the same refund back
    again = await services.stripe.create_refund(
        {
            "charge": setup.invoice.stripe_charge_id,
            "amount": 500,
            "metadata": {"refund_id": str(refund.id), "invoice_id": str(setup.invoice.id)},
        },
        idempotency_key=f"aquoris-refund-{refund.id}",
    )
    assert again["id"] == a.stripe_refund_id
    listed = await services.stripe.list_refunds({"charge": setup.invoice.stripe_charge_id})
    assert len(listed["data"]) == 1
    assert await _rows(services, setup.invoice.id) == [(500, "pending")]


async def test_stripe_refusal_fails_our_refund_with_a_safe_message(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    inject_fault(
        sandbox,
        method="POST",
        path_prefix="/v1/refunds",
        status=400,
        code="charge_already_refunded",
        message="Charge ch_x has already been refunded.",
    )
    refused = await refunds.send_to_stripe(
        services.db, services.stripe, (await _issue(services, setup.invoice.id)).id, actor=ACTOR
    )
    assert (refused.status, refused.failure_reason) == ("failed", "This payment has already been refunded in full.")
    inject_fault(
        sandbox,
        method="POST",
        path_prefix="/v1/refunds",
        status=402,
        code="card_declined",
        message="Your card was declined.",
        type="card_error",
    )
    declined = await refunds.send_to_stripe(
        services.db, services.stripe, (await _issue(services, setup.invoice.id)).id, actor=ACTOR
    )
    assert (declined.status, declined.failure_reason) == ("failed", "The card was declined.")
    # a failed refund no longer holds back what is refundable
    assert await _rows(services, setup.invoice.id) == [(29900, "failed"), (29900, "failed")]
    async with services.db.session() as session:
        failed = list(
            await session.scalars(
                select(AuditLog.details["error"].astext).where(
                    AuditLog.action == "refund.failed", AuditLog.entity_id == str(refused.id)
                )
            )
        )
    assert failed == ["This payment has already been refunded in full."]


async def test_stripe_unreachable_fails_the_refund_plainly(
    services: Services, settings: Settings, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    from payment.embedded_pg import free_port

    offline = StripeGateway(settings.replace(stripe_api_base=f"http://127.0.0.1:{free_port()}"), max_network_retries=0)
    refund = await refunds.send_to_stripe(
        services.db, offline, (await _issue(services, setup.invoice.id)).id, actor=ACTOR
    )
    assert (refund.status, refund.failure_reason) == (
        "failed",
        "Stripe could not be reached (network). Nothing was changed; try again.",
    )


async def test_fifty_concurrent_refunds_never_exceed_what_was_paid(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)

    async def one() -> str:
        try:
            refund = await _issue(services, setup.invoice.id, amount_cents=1000)
        except PaymentError:
            return "refused"
        sent = await refunds.send_to_stripe(services.db, services.stripe, refund.id, actor=ACTOR)
        return sent.status

    outcomes = await asyncio.gather(*(one() for _ in range(50)))
    assert sorted(set(outcomes)) == ["pending", "refused"] and outcomes.count("pending") == 29
    on_stripe = await services.stripe.retrieve_charge(setup.invoice.stripe_charge_id or "")
    assert on_stripe["amount_refunded"] == 29000 <= on_stripe["amount"]


async def test_manual_refund_is_a_bookkeeping_entry_effective_at_once(db: AsyncSession, gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    invoice = await factories.create_invoice(db, customer, source="manual", amount_cents=29900)
    with pytest.raises(ValidationError, match="more than zero"):
        await refunds.issue(db, invoice.id, amount_cents=0, reason="x", actor=ACTOR)
    with pytest.raises(ValidationError, match="reason is required"):
        await refunds.issue(db, invoice.id, amount_cents=100, reason=" ", actor=ACTOR)
    await refunds.issue(db, invoice.id, amount_cents=9900, reason="Partial", actor=ACTOR)
    assert (invoice.amount_refunded_cents, invoice.status) == (9900, "partially_refunded")
    with pytest.raises(ValidationError, match=r"cannot be more than THB 200\.00"):
        await refunds.issue(db, invoice.id, amount_cents=20001, reason="x", actor=ACTOR)
    rest = await refunds.issue(db, invoice.id, reason="Rest", actor=ACTOR)
    assert rest.amount_cents == 20000 and rest.status == "succeeded" and rest.stripe_refund_id is None
    assert (invoice.amount_refunded_cents, invoice.status) == (29900, "refunded")
    with pytest.raises(Conflict, match="this one is refunded"):
        await refunds.issue(db, invoice.id, reason="x", actor=ACTOR)
    assert await _refund_rows(db, invoice.id) == [(9900, "succeeded"), (20000, "succeeded")]


async def test_also_cancel_keeps_refund_when_cancellation_fails_then_retry(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    refund = await refunds.issue(db, setup.invoice.id, reason="Leaving", also_cancel=True, actor=ACTOR)
    inject_fault(sandbox, method="DELETE", path_prefix="/v1/subscriptions", status=500, times=5)
    await refunds.cancel_after_refund(in_db(db), refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "failed" and refund.cancel_error == (
        "Stripe had an internal error. Nothing was changed; try again."
    )
    assert refund.status == "pending" and setup.subscription.status == "active"
    sandbox_control(sandbox, "DELETE", "faults")
    await refunds.retry_cancellation(in_db(db), refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "succeeded" and refund.cancel_error is None
    assert setup.subscription.status == "canceled"
    with pytest.raises(Conflict, match="no failed cancellation"):
        await refunds.retry_cancellation(in_db(db), refund.id, gateway=gateway, actor=ACTOR)
    actions = await db.scalars(
        select(AuditLog.action)
        .where(AuditLog.entity_type == "refund", AuditLog.entity_id == str(refund.id))
        .order_by(AuditLog.id)
    )
    assert list(actions) == ["refund.issued", "refund.cancellation", "refund.cancellation_retried"]


async def test_also_cancel_of_a_manual_invoice_cancels_locally(db: AsyncSession, gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    sub = await factories.create_subscription(db, customer, plan, source="manual")
    invoice = await factories.create_invoice(db, customer, source="manual", subscription=sub)
    refund = await refunds.issue(db, invoice.id, reason="Leaving", also_cancel=True, actor=ACTOR)
    await refunds.cancel_after_refund(in_db(db), refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "succeeded" and sub.status == "canceled" and sub.ended_at is not None
    # a refund whose cancellation never ran (the process stopped in between) can be retried too
    sub2 = await factories.create_subscription(db, customer, plan, source="manual")
    invoice2 = await factories.create_invoice(db, customer, source="manual", subscription=sub2)
    stuck = await refunds.issue(db, invoice2.id, reason="Leaving", also_cancel=True, actor=ACTOR)
    await refunds.retry_cancellation(in_db(db), stuck.id, gateway=gateway, actor=ACTOR)
    assert stuck.cancel_outcome == "succeeded" and sub2.status == "canceled"
    lonely = await factories.create_invoice(db, customer, source="manual")
    with pytest.raises(ValidationError, match="no subscription to cancel"):
        await refunds.issue(db, lonely.id, reason="x", also_cancel=True, actor=ACTOR)


async def test_a_form_nonce_acts_once_and_replays_its_outcome(db: AsyncSession) -> None:
    nonce = submissions.new_nonce()
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) is None
    await submissions.settle(db, nonce, {"level": "success", "message": "Refund #1 recorded."})
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) == {
        "level": "success",
        "message": "Refund #1 recorded.",
    }
    with pytest.raises(ValidationError, match="expired or was tampered"):
        await submissions.claim(db, "short", action="refund", actor=ACTOR)
    assert await submissions.purge(db, older_than=utcnow() - timedelta(days=1)) == 0
    assert await submissions.purge(db, older_than=utcnow() + timedelta(seconds=1)) == 1
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) is None  # forgotten: usable again


async def test_a_refund_recorded_but_never_sent_is_sent_by_the_periodic_job(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    stuck = await _issue(services, setup.invoice.id, amount_cents=700)  # the process stopped before sending
    assert await refunds.send_unsent(services.db, services.stripe) == 0  # too fresh: its admin is sending it
    later = utcnow() + refunds.RESEND_AFTER + timedelta(seconds=1)
    assert await refunds.send_unsent(services.db, services.stripe, now=later) == 1
    listed = await services.stripe.list_refunds({"charge": setup.invoice.stripe_charge_id})
    assert [(r["amount"], r["metadata"]["refund_id"]) for r in listed["data"]] == [(700, str(stuck.id))]
    assert await refunds.send_unsent(services.db, services.stripe, now=later) == 0
