"""Manual payments received outside Stripe (bank transfer, wire, cash): an invoice and the subscription it pays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import Invoice, Plan, Subscription, SubscriptionAdjustment, utcnow
from payment.models.base import CURRENCIES
from payment.subscriptions import service as subscriptions
from payment.subscriptions.periods import period_after

MANUAL_METHODS = ("bank_transfer", "wire", "cash", "other")
# Both currencies we sell in have two decimal places (satang, cents).
MINOR_UNITS = {"thb": 2, "usd": 2}
MAX_AMOUNT_CENTS = 10**12


def format_money(amount_cents: int, currency: str) -> str:
    """29900, "thb" -> "THB 299.00" (Babel, exact)."""
    amount = Decimal(amount_cents).scaleb(-MINOR_UNITS.get(currency.lower(), 2))
    return str(format_currency(amount, currency.upper(), locale="en_US", format="¤¤ #,##0.00", currency_digits=False))


def parse_amount(text: str, currency: str) -> int:
    """An amount typed in the currency's major units ("299.00", "1,299.5") as exact integer minor units."""
    currency = currency.strip().lower()
    if currency not in MINOR_UNITS:
        raise ValidationError("Currency must be THB or USD.", field="currency")
    cleaned = text.strip().replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValidationError("Enter the amount as a number, e.g. 299.00.", field="amount") from None
    if not value.is_finite():
        raise ValidationError("Enter the amount as a number, e.g. 299.00.", field="amount")
    minor = value.scaleb(MINOR_UNITS[currency])
    if minor != minor.to_integral_value():
        raise ValidationError(
            f"{currency.upper()} amounts have at most {MINOR_UNITS[currency]} decimals.", field="amount"
        )
    cents = int(minor)
    if cents <= 0:
        raise ValidationError("The amount must be more than zero.", field="amount")
    if cents > MAX_AMOUNT_CENTS:
        raise ValidationError("The amount is too large.", field="amount")
    return cents


@dataclass(frozen=True)
class ManualPayment:
    amount_cents: int
    currency: str
    payment_method: str
    reference_number: str
    plan_id: int
    months: int = 0
    days: int = 0
    paid_on: date | None = None

    def validated(self, today: date) -> ManualPayment:
        currency = self.currency.strip().lower()
        if currency not in CURRENCIES:
            raise ValidationError("Currency must be THB or USD.", field="currency")
        if self.amount_cents <= 0 or self.amount_cents > MAX_AMOUNT_CENTS:
            raise ValidationError("The amount must be more than zero.", field="amount")
        if self.payment_method not in MANUAL_METHODS:
            raise ValidationError("Payment method must be bank transfer, wire, cash or other.", field="payment_method")
        reference = self.reference_number.strip()
        if not reference:
            raise ValidationError("The reference number is required.", field="reference_number")
        if len(reference) > 255:
            raise ValidationError("The reference number must be at most 255 characters.", field="reference_number")
        subscriptions.check_duration(self.months, self.days)
        paid_on = self.paid_on or today
        if paid_on > today:
            raise ValidationError("The paid date cannot be in the future.", field="paid_on")
        return ManualPayment(
            amount_cents=self.amount_cents,
            currency=currency,
            payment_method=self.payment_method,
            reference_number=reference,
            plan_id=self.plan_id,
            months=self.months,
            days=self.days,
            paid_on=paid_on,
        )


async def reference_taken(session: AsyncSession, reference_number: str) -> bool:
    """Whether a manual invoice already carries this reference number (case-insensitive)."""
    found = await session.execute(
        select(Invoice.id).where(
            Invoice.source == "manual", func.lower(Invoice.reference_number) == reference_number.strip().lower()
        )
    )
    return found.first() is not None


def _duplicate(reference: str) -> Conflict:
    return Conflict(
        f"A manual payment with reference number “{reference}” is already recorded.",
        field="reference_number",
        code="duplicate_reference",
    )


async def _checked(session: AsyncSession, customer_id: int, payment: ManualPayment) -> tuple[Plan, Subscription | None]:
    """The plan paid for and the live manual subscription this payment extends (None: a new one), or the error
    that refuses the payment."""
    plan = await session.get(Plan, payment.plan_id)
    if plan is None:
        raise NotFound("This plan does not exist.", field="plan_id")
    if payment.currency != plan.currency:
        # a subscription's paid amounts are added up and counted in MRR in one currency: the plan's
        raise ValidationError(
            f"{plan.name} is sold in {plan.currency.upper()}; record the payment in "
            f"{plan.currency.upper()} (convert it first if the customer paid in another "
            "currency).",
            field="currency",
        )
    if await reference_taken(session, payment.reference_number):
        raise _duplicate(payment.reference_number)
    conflicts = await subscriptions.live_in_scope(session, customer_id, plan)
    extendable = [s for s in conflicts if s.source == "manual" and s.plan_id == plan.id]
    others = [s for s in conflicts if s not in extendable]
    if others:
        raise Conflict(
            subscriptions.describe_conflicts(others) + " Cancel it first, then record the payment.",
            code="live_subscription",
        )
    if extendable and extendable[0].paid_currency not in (None, payment.currency):
        raise Conflict(
            f"Subscription #{extendable[0].id} was paid in {extendable[0].paid_currency.upper()}; one "
            "subscription never mixes currencies.",
            field="currency",
            code="currency_mismatch",
        )
    return plan, (extendable[0] if extendable else None)


async def check_manual(session: AsyncSession, customer_id: int, payment: ManualPayment) -> None:
    """Everything `record_manual` would refuse the payment for (currency, duplicate reference, a live subscription
    in the way), checked without locking or writing, so the admin hears it before the confirmation page."""
    await _checked(session, customer_id, payment.validated(utcnow().date()))


async def record_manual(
    session: AsyncSession, customer_id: int, payment: ManualPayment, *, actor: str, ip: str | None = None
) -> Invoice:
    """Record money received outside Stripe as a paid MANUAL invoice plus the manual subscription it pays for
    (extending the customer's live manual one on the same plan); a reference number is accepted once."""
    require(actor, Permission.RECORD_PAYMENT)
    now = utcnow()
    payment = payment.validated(now.date())
    assert payment.paid_on is not None
    customer = await subscriptions.lock_customer(session, customer_id)
    plan, extendable = await _checked(session, customer.id, payment)
    paid_at = now if payment.paid_on == now.date() else datetime.combine(payment.paid_on, time(), UTC)
    previous_end: datetime | None = None
    if extendable is not None:
        sub = await subscriptions.lock_subscription(session, extendable.id)
        previous_end = sub.current_period_end or now
        start = previous_end
        sub.current_period_end = period_after(start, months=payment.months, days=payment.days)
        sub.paid_amount_cents = (sub.paid_amount_cents or 0) + payment.amount_cents
        sub.paid_currency = payment.currency
    else:
        start = paid_at
        sub = Subscription(
            customer_id=customer.id,
            plan_id=plan.id,
            status="active",
            source="manual",
            current_period_start=start,
            current_period_end=period_after(start, months=payment.months, days=payment.days),
            paid_amount_cents=payment.amount_cents,
            paid_currency=payment.currency,
        )
        session.add(sub)
    if sub.current_period_end is not None and sub.current_period_end <= now:
        raise ValidationError(
            "This payment's period has already ended; check the paid date and duration.", field="paid_on"
        )
    await session.flush()
    invoice = Invoice(
        customer_id=customer.id,
        subscription_id=sub.id,
        source="manual",
        status="paid",
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        paid_at=paid_at,
        payment_method=payment.payment_method,
        reference_number=payment.reference_number,
        period_start=start,
        period_end=sub.current_period_end,
        recorded_by=actor,
    )
    try:
        # A concurrent recording of the same reference loses here on the unique index, not with a raw error.
        async with session.begin_nested():
            session.add(invoice)
            await session.flush()
    except IntegrityError:
        raise _duplicate(payment.reference_number) from None
    assert sub.current_period_end is not None and start is not None
    days = max(1, min(subscriptions.MAX_DAYS, (sub.current_period_end - start).days))
    session.add(
        SubscriptionAdjustment(
            subscription_id=sub.id,
            kind="manual_payment",
            days=days,
            actor=actor,
            previous_period_end=previous_end,
            new_period_end=sub.current_period_end,
            reason=f"Manual payment {payment.reference_number} ({payment.payment_method.replace('_', ' ')})",
        )
    )
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="payment.recorded_manual",
        entity_type="invoice",
        entity_id=invoice.id,
        details={
            "customer_id": customer.id,
            "subscription_id": sub.id,
            "plan": plan.slug,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
            "payment_method": payment.payment_method,
            "reference_number": payment.reference_number,
            "paid_on": payment.paid_on.isoformat(),
            "months": payment.months,
            "days": payment.days,
            "extended": previous_end is not None,
        },
        ip=ip,
    )
    return invoice
