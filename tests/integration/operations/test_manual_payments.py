"""Recording a payment received outside Stripe: one MANUAL invoice and the subscription it pays, once per reference."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, Role
from payment.errors import Conflict, ValidationError
from payment.models import AuditLog, Base, Invoice, Subscription, SubscriptionAdjustment, utcnow
from payment.payments.service import ManualPayment, parse_amount, record_manual
from tests.support import factories

ACTOR = AdminActor(7, Role.OWNER)


async def _count(db: AsyncSession, model: type[Base], *where: ColumnElement[bool]) -> int:
    return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_thb_bank_transfer_creates_manual_invoice_and_subscription(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    invoice = await record_manual(
        db,
        customer.id,
        ManualPayment(
            amount_cents=parse_amount("299.00", "thb"),
            currency="THB",
            payment_method="bank_transfer",
            reference_number=" KBANK-2026-001 ",
            plan_id=plan.id,
            months=1,
        ),
        actor=ACTOR,
    )
    assert (invoice.source, invoice.status, invoice.amount_cents, invoice.currency) == ("manual", "paid", 29900, "thb")
    assert (invoice.payment_method, invoice.reference_number, invoice.recorded_by) == (
        "bank_transfer",
        "KBANK-2026-001",
        ACTOR,
    )
    sub = await db.get(Subscription, invoice.subscription_id)
    assert sub is not None and (sub.source, sub.status, sub.plan_id) == ("manual", "active", plan.id)
    assert (sub.paid_amount_cents, sub.paid_currency) == (29900, "thb")
    assert sub.current_period_end is not None and sub.current_period_start is not None
    assert 28 <= (sub.current_period_end - sub.current_period_start).days <= 31
    assert invoice.period_end == sub.current_period_end
    kinds = await db.scalars(
        select(SubscriptionAdjustment.kind).where(SubscriptionAdjustment.subscription_id == sub.id)
    )
    assert list(kinds) == ["manual_payment"]
    audit = (
        await db.scalars(
            select(AuditLog).where(AuditLog.action == "payment.recorded_manual", AuditLog.entity_id == str(invoice.id))
        )
    ).one()
    assert audit.actor == ACTOR and audit.details["reference_number"] == "KBANK-2026-001"


async def test_same_reference_twice_is_refused_without_side_effects(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    payment = ManualPayment(
        amount_cents=29900, currency="thb", payment_method="wire", reference_number="WIRE-9", plan_id=plan.id, days=30
    )
    first = await record_manual(db, customer.id, payment, actor=ACTOR)
    sub = await db.get(Subscription, first.subscription_id)
    assert sub is not None
    end = sub.current_period_end
    other = await factories.create_customer(db)
    for who in (customer, other):
        with pytest.raises(Conflict, match="reference number “wire-9” is already recorded"):
            await record_manual(
                db, who.id, ManualPayment(**{**payment.__dict__, "reference_number": "wire-9"}), actor=ACTOR
            )
    assert await _count(db, Invoice, Invoice.source == "manual") == 1
    assert await _count(db, Subscription, Subscription.customer_id.in_([customer.id, other.id])) == 1
    await db.refresh(sub)
    assert sub.current_period_end == end and sub.paid_amount_cents == 29900


async def test_second_payment_extends_the_live_manual_subscription(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    first = await record_manual(
        db,
        customer.id,
        ManualPayment(
            amount_cents=29900, currency="thb", payment_method="cash", reference_number="C-1", plan_id=plan.id, days=30
        ),
        actor=ACTOR,
    )
    sub = await db.get(Subscription, first.subscription_id)
    assert sub is not None and sub.current_period_end is not None
    end = sub.current_period_end
    second = await record_manual(
        db,
        customer.id,
        ManualPayment(
            amount_cents=59800, currency="thb", payment_method="cash", reference_number="C-2", plan_id=plan.id, days=60
        ),
        actor=ACTOR,
    )
    assert second.subscription_id == sub.id
    await db.refresh(sub)
    assert sub.current_period_end == end + timedelta(days=60) and sub.paid_amount_cents == 89700
    assert second.period_start == end


async def test_payment_is_refused_while_another_live_subscription_covers_the_scope(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    await factories.create_subscription(db, customer, plan, source="stripe")
    with pytest.raises(Conflict, match="already has a live subscription"):
        await record_manual(
            db,
            customer.id,
            ManualPayment(
                amount_cents=100,
                currency="thb",
                payment_method="other",
                reference_number="X-1",
                plan_id=plan.id,
                months=1,
            ),
            actor=ACTOR,
        )
    assert await _count(db, Invoice, Invoice.customer_id == customer.id) == 0


async def test_one_subscription_never_mixes_currencies(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db, currency="usd", price_cents=50000)
    await record_manual(
        db,
        customer.id,
        ManualPayment(
            amount_cents=300000,
            currency="usd",
            payment_method="wire",
            reference_number="USD-1",
            plan_id=plan.id,
            months=6,
        ),
        actor=ACTOR,
    )
    with pytest.raises(ValidationError, match="is sold in USD") as refused:
        await record_manual(
            db,
            customer.id,
            ManualPayment(
                amount_cents=300000,
                currency="thb",
                payment_method="wire",
                reference_number="THB-1",
                plan_id=plan.id,
                months=6,
            ),
            actor=ACTOR,
        )
    assert refused.value.field == "currency"
    sub = (await db.execute(select(Subscription).where(Subscription.customer_id == customer.id))).scalar_one()
    assert (sub.paid_amount_cents, sub.paid_currency) == (300000, "usd")
    assert await _count(db, Invoice, Invoice.customer_id == customer.id) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"currency": "eur"}, "THB or USD"),
        ({"payment_method": "card"}, "bank transfer, wire, cash or other"),
        ({"reference_number": "  "}, "reference number is required"),
        ({"months": 0, "days": 0}, "at least one day"),
        ({"paid_on": date.today() + timedelta(days=2)}, "cannot be in the future"),
    ],
)
async def test_invalid_payment_fields_are_refused(db: AsyncSession, change: dict[str, object], message: str) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    fields: dict[str, object] = {
        "amount_cents": 100,
        "currency": "thb",
        "payment_method": "wire",
        "reference_number": "R-1",
        "plan_id": plan.id,
        "months": 1,
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        await record_manual(db, customer.id, ManualPayment(**fields), actor=ACTOR)  # type: ignore[arg-type]
    assert await _count(db, Invoice, Invoice.customer_id == customer.id) == 0


async def test_backdated_payment_starts_its_period_on_the_paid_date(db: AsyncSession) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    paid_on = utcnow().date() - timedelta(days=10)
    invoice = await record_manual(
        db,
        customer.id,
        ManualPayment(
            amount_cents=100,
            currency="thb",
            payment_method="wire",
            reference_number="B-1",
            plan_id=plan.id,
            days=30,
            paid_on=paid_on,
        ),
        actor=ACTOR,
    )
    assert invoice.paid_at is not None and invoice.paid_at.date() == paid_on
    assert invoice.period_start == invoice.paid_at and invoice.period_end == invoice.paid_at + timedelta(days=30)
