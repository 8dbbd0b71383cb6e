"""Refunds: Stripe ones pending until `charge.refunded` confirms them, manual ones at once; never more than what is
refundable; "also cancel" keeps the refund when the cancellation fails and lets an admin retry it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, Role
from payment.config import Settings
from payment.errors import Conflict, StripeError, ValidationError
from payment.models import AuditLog, Refund, utcnow
from payment.refunds import service as refunds
from payment.stripe.gateway import StripeGateway
from payment.stripe.sync import reconcile_charge_refunds
from payment.submissions import service as submissions
from tests.operations.stripe_setup import inject_fault, paid_stripe_subscription, sandbox_control
from tests.support import factories

ACTOR = AdminActor(2, Role.OWNER)


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)


async def _refund_rows(db: AsyncSession, invoice_id: int) -> list[tuple[int, str]]:
    rows = await db.execute(select(Refund.amount_cents, Refund.status).where(Refund.invoice_id == invoice_id)
                            .order_by(Refund.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_stripe_partial_then_full_refund_pending_until_webhook(db: AsyncSession, gateway: StripeGateway,
                                                                     sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    invoice = setup.invoice
    first = await refunds.issue(db, invoice.id, amount_cents=10000, reason="Service issue", gateway=gateway,
                                actor=ACTOR, idempotency_key="refund-test-1")
    assert first.status == "pending" and first.stripe_refund_id is not None and first.created_by == ACTOR
    assert invoice.amount_refunded_cents == 0 and invoice.status == "paid"
    assert await refunds.refundable_cents(db, invoice) == 19900
    with pytest.raises(ValidationError, match=r"cannot be more than THB 199\.00"):
        await refunds.issue(db, invoice.id, amount_cents=19901, reason="Too much", gateway=gateway, actor=ACTOR)
    second = await refunds.issue(db, invoice.id, reason="Rest of it", gateway=gateway, actor=ACTOR,
                                 idempotency_key="refund-test-2")
    assert second.amount_cents == 19900 and second.status == "pending"
    charge = await gateway.retrieve_charge(invoice.stripe_charge_id or "")
    assert charge["amount_refunded"] == 29900
    with pytest.raises(Conflict, match="Nothing is left to refund"):
        await refunds.issue(db, invoice.id, reason="Again", gateway=gateway, actor=ACTOR)
    # what the charge.refunded webhook does (issue 6's reconcile)
    await reconcile_charge_refunds(db, charge, actor="stripe")
    assert await _refund_rows(db, invoice.id) == [(10000, "succeeded"), (19900, "succeeded")]
    assert (invoice.amount_refunded_cents, invoice.status) == (29900, "refunded")
    audited = await db.scalars(select(AuditLog.details).where(AuditLog.action == "refund.issued",
                                                              AuditLog.actor == ACTOR).order_by(AuditLog.id))
    assert [d["amount_cents"] for d in audited] == [10000, 19900]


async def test_same_idempotency_key_gives_one_stripe_refund_and_one_row(db: AsyncSession, gateway: StripeGateway,
                                                                        sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    a = await refunds.issue(db, setup.invoice.id, amount_cents=500, reason="x", gateway=gateway, actor=ACTOR,
                            idempotency_key="same-click")
    b = await refunds.issue(db, setup.invoice.id, amount_cents=500, reason="x", gateway=gateway, actor=ACTOR,
                            idempotency_key="same-click")
    assert a.id == b.id and a.stripe_refund_id == b.stripe_refund_id
    listed = await gateway.list_refunds({"charge": setup.invoice.stripe_charge_id})
    assert len(listed["data"]) == 1
    assert await _refund_rows(db, setup.invoice.id) == [(500, "pending")]


async def test_stripe_refusal_writes_nothing_and_says_why(db: AsyncSession, gateway: StripeGateway,
                                                          sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    inject_fault(sandbox, method="POST", path_prefix="/v1/refunds", status=400, code="charge_already_refunded",
                 message="Charge ch_x has already been refunded.")
    with pytest.raises(StripeError) as refused:
        await refunds.issue(db, setup.invoice.id, reason="x", gateway=gateway, actor=ACTOR)
    assert refused.value.message == "This payment has already been refunded in full."
    inject_fault(sandbox, method="POST", path_prefix="/v1/refunds", status=402, code="card_declined",
                 message="Your card was declined.", type="card_error")
    with pytest.raises(StripeError) as declined:
        await refunds.issue(db, setup.invoice.id, reason="x", gateway=gateway, actor=ACTOR)
    assert declined.value.message == "The card was declined."
    assert await _refund_rows(db, setup.invoice.id) == []
    assert await db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "refund.issued")) == 0


async def test_stripe_unreachable_is_said_plainly_and_nothing_is_written(db: AsyncSession, gateway: StripeGateway,
                                                                         settings: Settings, sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    from payment.embedded_pg import free_port

    offline = StripeGateway(settings.replace(stripe_api_base=f"http://127.0.0.1:{free_port()}"),
                            max_network_retries=0)
    with pytest.raises(StripeError) as refused:
        await refunds.issue(db, setup.invoice.id, reason="x", gateway=offline, actor=ACTOR)
    assert refused.value.message == "Stripe could not be reached (network). Nothing was changed; try again."
    assert await _refund_rows(db, setup.invoice.id) == []


async def test_manual_refund_is_a_bookkeeping_entry_effective_at_once(db: AsyncSession,
                                                                      gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    invoice = await factories.create_invoice(db, customer, source="manual", amount_cents=29900)
    with pytest.raises(ValidationError, match="more than zero"):
        await refunds.issue(db, invoice.id, amount_cents=0, reason="x", gateway=gateway, actor=ACTOR)
    with pytest.raises(ValidationError, match="reason is required"):
        await refunds.issue(db, invoice.id, amount_cents=100, reason=" ", gateway=gateway, actor=ACTOR)
    await refunds.issue(db, invoice.id, amount_cents=9900, reason="Partial", gateway=gateway, actor=ACTOR)
    assert (invoice.amount_refunded_cents, invoice.status) == (9900, "partially_refunded")
    with pytest.raises(ValidationError, match=r"cannot be more than THB 200\.00"):
        await refunds.issue(db, invoice.id, amount_cents=20001, reason="x", gateway=gateway, actor=ACTOR)
    rest = await refunds.issue(db, invoice.id, reason="Rest", gateway=gateway, actor=ACTOR)
    assert rest.amount_cents == 20000 and rest.status == "succeeded" and rest.stripe_refund_id is None
    assert (invoice.amount_refunded_cents, invoice.status) == (29900, "refunded")
    with pytest.raises(Conflict, match="this one is refunded"):
        await refunds.issue(db, invoice.id, reason="x", gateway=gateway, actor=ACTOR)
    assert await _refund_rows(db, invoice.id) == [(9900, "succeeded"), (20000, "succeeded")]


async def test_also_cancel_keeps_refund_when_cancellation_fails_then_retry(db: AsyncSession,
                                                                          gateway: StripeGateway,
                                                                          sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    refund = await refunds.issue(db, setup.invoice.id, reason="Leaving", also_cancel=True, gateway=gateway,
                                 actor=ACTOR, idempotency_key="also-cancel-1")
    inject_fault(sandbox, method="DELETE", path_prefix="/v1/subscriptions", status=500, times=5)
    await refunds.cancel_after_refund(db, refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "failed" and refund.cancel_error == (
        "Stripe had an internal error. Nothing was changed; try again.")
    assert refund.status == "pending" and setup.subscription.status == "active"
    sandbox_control(sandbox, "DELETE", "faults")
    await refunds.retry_cancellation(db, refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "succeeded" and refund.cancel_error is None
    assert setup.subscription.status == "canceled"
    with pytest.raises(Conflict, match="no failed cancellation"):
        await refunds.retry_cancellation(db, refund.id, gateway=gateway, actor=ACTOR)
    actions = await db.scalars(select(AuditLog.action).where(AuditLog.entity_type == "refund",
                                                             AuditLog.entity_id == str(refund.id))
                               .order_by(AuditLog.id))
    assert list(actions) == ["refund.issued", "refund.cancellation", "refund.cancellation_retried"]


async def test_also_cancel_of_a_manual_invoice_cancels_locally(db: AsyncSession, gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    sub = await factories.create_subscription(db, customer, plan, source="manual")
    invoice = await factories.create_invoice(db, customer, source="manual", subscription=sub)
    refund = await refunds.issue(db, invoice.id, reason="Leaving", also_cancel=True, gateway=gateway, actor=ACTOR)
    await refunds.cancel_after_refund(db, refund.id, gateway=gateway, actor=ACTOR)
    assert refund.cancel_outcome == "succeeded" and sub.status == "canceled" and sub.ended_at is not None
    # a refund whose cancellation never ran (the process stopped in between) can be retried too
    sub2 = await factories.create_subscription(db, customer, plan, source="manual")
    invoice2 = await factories.create_invoice(db, customer, source="manual", subscription=sub2)
    stuck = await refunds.issue(db, invoice2.id, reason="Leaving", also_cancel=True, gateway=gateway, actor=ACTOR)
    await refunds.retry_cancellation(db, stuck.id, gateway=gateway, actor=ACTOR)
    assert stuck.cancel_outcome == "succeeded" and sub2.status == "canceled"
    lonely = await factories.create_invoice(db, customer, source="manual")
    with pytest.raises(ValidationError, match="no subscription to cancel"):
        await refunds.issue(db, lonely.id, reason="x", also_cancel=True, gateway=gateway, actor=ACTOR)


async def test_a_form_nonce_acts_once_and_replays_its_outcome(db: AsyncSession) -> None:
    nonce = submissions.new_nonce()
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) is None
    await submissions.settle(db, nonce, {"level": "success", "message": "Refund #1 recorded."})
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) == {
        "level": "success", "message": "Refund #1 recorded."}
    with pytest.raises(ValidationError, match="expired or was tampered"):
        await submissions.claim(db, "short", action="refund", actor=ACTOR)
    assert await submissions.purge(db, older_than=utcnow() - timedelta(days=1)) == 0
    assert await submissions.purge(db, older_than=utcnow() + timedelta(seconds=1)) == 1
    assert await submissions.claim(db, nonce, action="refund", actor=ACTOR) is None  # forgotten: usable again
