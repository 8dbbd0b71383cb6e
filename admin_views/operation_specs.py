"""The admin billing actions as form specs: what each form asks, how it is parsed, what it confirms and which one
service it calls. The flow (nonce, CSRF, confirm, transaction, outcome) lives in admin_views/operations.py.

Each action parses its form into a frozen dataclass of its own (`Operation[ExtendInput]`, ...), so `summary`,
`precheck` and `act` read typed fields, and mypy sees a typo. Parsing turns form text into values (a whole number,
a date, a plan of the list) and leaves every rule to the service's own validators (`subscriptions.check_reason`,
`check_days`, `check_duration`, `payments.ManualPayment.validated`, ...): a rule written here would be a copy.

To add an action: a dataclass for its input, a subclass of `Operation[ThatInput]` with `action`, `kind`,
`permission`, `title`, `fields`, `parse`, `summary` and `act` (one service call), and an entry in `OPERATIONS`
(or, from another module, `OPERATIONS[op.action] = op` as admin_views/dunning.py does); a template needs nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from admin_views.formatting import money, status_label, when
from payment.admins.permissions import AdminActor, Permission
from payment.db import Transactions
from payment.errors import PaymentError, ValidationError
from payment.models import Customer, Drift, Invoice, Plan, Refund, Subscription
from payment.payments import service as payments
from payment.refunds import service as refunds
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import changes as plan_changes
from payment.subscriptions import service as subscriptions

METHOD_LABELS = {"bank_transfer": "Bank transfer", "wire": "Wire", "cash": "Cash", "other": "Other"}


@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"  # text | textarea | number | select | checkbox | date
    required: bool = False
    options: list[tuple[str, str]] = field(default_factory=list)
    help: str = ""
    value: str = ""
    error: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """What a form acts on, loaded for one request."""

    customer: Customer
    subscription: Subscription | None = None
    invoice: Invoice | None = None
    refund: Refund | None = None
    plans: list[Plan] = field(default_factory=list)
    refundable_cents: int = 0
    drift: Drift | None = None


@dataclass
class ActContext:
    gateway: StripeGateway
    actor: AdminActor
    ip: str | None
    nonce: str


Outcome = dict[str, Any]
P = TypeVar("P")


@dataclass(frozen=True)
class NoInput:
    """The input of an action whose form asks nothing."""


@dataclass(frozen=True)
class ReasonInput:
    reason: str  # "" when the optional reason was left blank: the service writes its default


@dataclass(frozen=True)
class ExtendInput:
    days: int
    reason: str


@dataclass(frozen=True)
class GrantInput:
    plan_id: int
    plan_name: str
    months: int
    days: int
    reason: str
    replace: bool


@dataclass(frozen=True)
class PaymentInput:
    payment: payments.ManualPayment
    plan_name: str


@dataclass(frozen=True)
class RefundInput:
    amount_cents: int
    reason: str
    also_cancel: bool


def _int(values: dict[str, str], name: str, label: str, *, default: int | None = None) -> int:
    raw = values.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{label} must be a whole number.", field=name) from None


def _duration(values: dict[str, str]) -> tuple[int, int]:
    count = _int(values, "duration", "Duration")
    unit = values.get("unit", "months")
    if unit not in ("months", "days"):
        raise ValidationError("Choose months or days.", field="unit")
    months, days = (count, 0) if unit == "months" else (0, count)
    try:
        subscriptions.check_duration(months, days)
    except ValidationError as exc:
        raise ValidationError(exc.message, field="duration") from None
    return months, days


def _reason(values: dict[str, str], *, required: bool) -> str:
    """The reason as the service checks it; "" for an optional one left blank (the service writes its default)."""
    raw = values.get("reason", "")
    if not required and not raw.strip():
        return ""
    return subscriptions.check_reason(raw)


def _reason_field(required: bool) -> Field:
    return Field(
        "reason",
        "Reason" if required else "Reason (optional)",
        "textarea",
        required=required,
        attrs={"maxlength": "2000"},
    )


def _plan_options(plans: list[Plan]) -> list[tuple[str, str]]:
    return [
        (
            str(p.id),
            f"{p.name} ({p.slug}{', ' + p.app.slug if p.app else ', all apps'})" + ("" if p.active else " — inactive"),
        )
        for p in plans
    ]


def _duration_fields() -> list[Field]:
    return [
        Field("duration", "Duration", "number", required=True, value="1", attrs={"min": "1", "max": "3650"}),
        Field("unit", "Unit", "select", options=[("months", "months"), ("days", "days")], value="months"),
    ]


def _sub_label(sub: Subscription) -> str:
    return f"#{sub.id} {sub.plan.name} ({sub.source}, {status_label(sub.status)}, until {when(sub.current_period_end)})"


class Operation(Generic[P]):
    """One admin action; P is the dataclass its form parses into."""

    action = ""
    kind = ""  # customer | subscription | invoice | refund | drift: what the URL's id names
    permission: Permission
    step_up = False  # asks for a fresh two-factor code (or the password) first
    title = ""
    button = "Continue"
    confirm_button = "Confirm"
    danger = False

    def fields(self, target: Target) -> list[Field]:
        return []

    def unavailable(self, target: Target) -> str:
        """Why this action cannot be done now ("" when it can); the form says so up front."""
        sub = target.subscription
        if self.kind == "subscription" and sub is not None and not sub.is_live:
            return f"Subscription #{sub.id} is {sub.status}; only a live subscription can be changed."
        return ""

    def parse(self, target: Target, values: dict[str, str]) -> P:
        """The form's values as this action's input, or a ValidationError naming the field."""
        raise NotImplementedError

    def summary(self, target: Target, parsed: P) -> list[tuple[str, str]]:
        return []

    async def precheck(self, session: AsyncSession, target: Target, parsed: P) -> None:
        """Refusals the database can tell before the confirmation page (read-only; `act` checks again)."""

    async def preview(
        self, db: Transactions, target: Target, parsed: P, gateway: StripeGateway, actor: AdminActor
    ) -> tuple[P, dict[str, str]]:
        """What Stripe says the action would cost, for the confirmation page (read-only, with no session of ours open
        while Stripe answers): the input completed with it, and the form values the confirmation carries on."""
        return parsed, {}

    async def prepare(self, target: Target, parsed: P, ctx: ActContext) -> P:
        """What the action needs from Stripe, read once confirmed and before the transaction opens (so no
        transaction waits on Stripe): the input again, completed."""
        return parsed

    async def act(self, session: AsyncSession, target: Target, parsed: P, ctx: ActContext) -> Outcome:
        raise NotImplementedError

    # An action whose service calls Stripe runs through `act_outside` instead: no transaction is open around it
    # (its service opens its own short ones, payment/subscriptions/turns.py), and the form's nonce is claimed in a
    # transaction of its own, given back when the service refuses so the same form can be sent again.
    outside_transaction = False

    async def act_outside(self, db: Transactions, target: Target, parsed: P, ctx: ActContext) -> Outcome:
        raise NotImplementedError


class CancelAtPeriodEnd(Operation[ReasonInput]):
    permission = Permission.MANAGE_SUBSCRIPTIONS
    action, kind, title, button, danger = (
        "cancel",
        "subscription",
        "Cancel subscription at period end",
        "Cancel Sub",
        True,
    )

    def fields(self, target: Target) -> list[Field]:
        return [_reason_field(False)]

    def parse(self, target: Target, values: dict[str, str]) -> ReasonInput:
        return ReasonInput(_reason(values, required=False))

    def summary(self, target: Target, parsed: ReasonInput) -> list[tuple[str, str]]:
        assert target.subscription is not None
        return [
            ("Subscription", _sub_label(target.subscription)),
            ("Effect", f"Stops renewing; ends {when(target.subscription.current_period_end)}"),
            ("Reason", parsed.reason or "—"),
        ]

    outside_transaction = True

    async def act_outside(self, db: Transactions, target: Target, parsed: ReasonInput, ctx: ActContext) -> Outcome:
        assert target.subscription is not None
        sub = await subscriptions.cancel_at_period_end(
            db,
            target.subscription.id,
            gateway=ctx.gateway,
            reason=parsed.reason,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        return {
            "level": "success",
            "message": f"Subscription #{sub.id} will cancel at period end ({when(sub.current_period_end)}).",
        }


class Resume(Operation[ReasonInput]):
    permission = Permission.MANAGE_SUBSCRIPTIONS
    action, kind, title, button = "resume", "subscription", "Resume subscription", "Resume"

    def fields(self, target: Target) -> list[Field]:
        return [_reason_field(False)]

    def parse(self, target: Target, values: dict[str, str]) -> ReasonInput:
        return ReasonInput(_reason(values, required=False))

    def summary(self, target: Target, parsed: ReasonInput) -> list[tuple[str, str]]:
        assert target.subscription is not None
        return [
            ("Subscription", _sub_label(target.subscription)),
            ("Effect", "The pending cancellation is withdrawn; it renews again"),
            ("Reason", parsed.reason or "—"),
        ]

    outside_transaction = True

    async def act_outside(self, db: Transactions, target: Target, parsed: ReasonInput, ctx: ActContext) -> Outcome:
        assert target.subscription is not None
        sub = await subscriptions.resume(
            db,
            target.subscription.id,
            gateway=ctx.gateway,
            reason=parsed.reason,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        return {"level": "success", "message": f"Subscription #{sub.id} resumed; it renews again."}


class Extend(Operation[ExtendInput]):
    permission = Permission.MANAGE_SUBSCRIPTIONS
    action, kind, title, button = "extend", "subscription", "Extend subscription", "Extend"

    def fields(self, target: Target) -> list[Field]:
        return [
            Field(
                "days",
                "Days to add",
                "number",
                required=True,
                attrs={"min": "1", "max": "3650"},
                help="1 to 3650. A Stripe subscription is not charged for the added days.",
            ),
            _reason_field(True),
        ]

    def parse(self, target: Target, values: dict[str, str]) -> ExtendInput:
        days = subscriptions.check_days(_int(values, "days", "Days"))
        return ExtendInput(days=days, reason=_reason(values, required=True))

    def summary(self, target: Target, parsed: ExtendInput) -> list[tuple[str, str]]:
        assert target.subscription is not None
        return [
            ("Subscription", _sub_label(target.subscription)),
            ("Days to add", str(parsed.days)),
            ("Reason", parsed.reason),
        ]

    outside_transaction = True

    async def act_outside(self, db: Transactions, target: Target, parsed: ExtendInput, ctx: ActContext) -> Outcome:
        assert target.subscription is not None
        sub = await subscriptions.extend(
            db,
            target.subscription.id,
            days=parsed.days,
            reason=parsed.reason,
            gateway=ctx.gateway,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        return {
            "level": "success",
            "message": f"Subscription #{sub.id} extended by {parsed.days} days; "
            f"it now runs until {when(sub.current_period_end)}.",
        }


class Grant(Operation[GrantInput]):
    permission = Permission.MANAGE_SUBSCRIPTIONS
    action, kind, title, button = "grant", "customer", "Grant subscription", "Grant Subscription"

    def fields(self, target: Target) -> list[Field]:
        return [
            Field("plan_id", "Plan", "select", required=True, options=_plan_options(target.plans)),
            *_duration_fields(),
            _reason_field(True),
        ]

    def parse(self, target: Target, values: dict[str, str]) -> GrantInput:
        plan = _plan(target, values)
        months, days = _duration(values)
        return GrantInput(
            plan_id=plan.id,
            plan_name=plan.name,
            months=months,
            days=days,
            reason=_reason(values, required=True),
            replace=values.get("replace") == "yes",
        )

    def summary(self, target: Target, parsed: GrantInput) -> list[tuple[str, str]]:
        return [
            ("Customer", str(target.customer)),
            ("Plan", parsed.plan_name),
            ("Duration", _span(parsed.months, parsed.days)),
            ("Invoice", "none (free)"),
            ("Reason", parsed.reason),
            *([("Replaces", "the customer's live subscription in this scope")] if parsed.replace else []),
        ]

    async def precheck(self, session: AsyncSession, target: Target, parsed: GrantInput) -> None:
        await subscriptions.check_grant(session, target.customer.id, plan_id=parsed.plan_id, replace=parsed.replace)

    outside_transaction = True  # replacing a Stripe subscription cancels it on Stripe first

    async def act_outside(self, db: Transactions, target: Target, parsed: GrantInput, ctx: ActContext) -> Outcome:
        sub = await subscriptions.grant(
            db,
            target.customer.id,
            plan_id=parsed.plan_id,
            months=parsed.months,
            days=parsed.days,
            reason=parsed.reason,
            replace=parsed.replace,
            gateway=ctx.gateway,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        return {
            "level": "success",
            "message": f"Granted {parsed.plan_name} as subscription #{sub.id} until {when(sub.current_period_end)}.",
        }


class RecordPayment(Operation[PaymentInput]):
    permission = Permission.RECORD_PAYMENT
    action, kind, title, button = "payment", "customer", "Record manual payment", "Record Payment"

    def fields(self, target: Target) -> list[Field]:
        return [
            Field(
                "amount",
                "Amount, in baht or dollars (e.g. 299.00)",
                required=True,
                attrs={"inputmode": "decimal", "autocomplete": "off"},
            ),
            Field("currency", "Currency", "select", options=[("thb", "THB"), ("usd", "USD")], value="thb"),
            Field(
                "payment_method", "Payment method", "select", options=list(METHOD_LABELS.items()), value="bank_transfer"
            ),
            Field(
                "reference_number",
                "Reference number",
                required=True,
                attrs={"maxlength": "255"},
                help="The bank's or payer's reference; each can be recorded once.",
            ),
            Field("plan_id", "Plan", "select", required=True, options=_plan_options(target.plans)),
            *_duration_fields(),
            Field("paid_on", "Paid date", "date", value=date.today().isoformat()),
        ]

    def parse(self, target: Target, values: dict[str, str]) -> PaymentInput:
        currency = values.get("currency", "")
        cents = payments.parse_amount(values.get("amount", ""), currency)
        plan = _plan(target, values)
        months, days = _duration(values)
        raw_date = values.get("paid_on", "").strip()
        try:
            paid_on = date.fromisoformat(raw_date) if raw_date else date.today()
        except ValueError:
            raise ValidationError("Enter the paid date as YYYY-MM-DD.", field="paid_on") from None
        payment = payments.ManualPayment(
            amount_cents=cents,
            currency=currency,
            reference_number=values.get("reference_number", ""),
            payment_method=values.get("payment_method", ""),
            plan_id=plan.id,
            months=months,
            days=days,
            paid_on=paid_on,
        ).validated(date.today())
        return PaymentInput(payment=payment, plan_name=plan.name)

    def summary(self, target: Target, parsed: PaymentInput) -> list[tuple[str, str]]:
        payment = parsed.payment
        return [
            ("Customer", str(target.customer)),
            ("Amount", money(payment.amount_cents, payment.currency)),
            ("Payment method", METHOD_LABELS[payment.payment_method]),
            ("Reference number", payment.reference_number),
            ("Plan", parsed.plan_name),
            ("Duration", _span(payment.months, payment.days)),
            ("Paid date", payment.paid_on.isoformat() if payment.paid_on else "—"),
        ]

    async def precheck(self, session: AsyncSession, target: Target, parsed: PaymentInput) -> None:
        await payments.check_manual(session, target.customer.id, parsed.payment)

    async def act(self, session: AsyncSession, target: Target, parsed: PaymentInput, ctx: ActContext) -> Outcome:
        invoice = await payments.record_manual(session, target.customer.id, parsed.payment, actor=ctx.actor, ip=ctx.ip)
        return {
            "level": "success",
            "message": f"Recorded {money(invoice.amount_cents, invoice.currency)} "
            f"({parsed.payment.reference_number}) as invoice #{invoice.id} for "
            f"subscription #{invoice.subscription_id}.",
        }


class IssueRefund(Operation[RefundInput]):
    permission = Permission.REFUND
    step_up = True
    action, kind, title, button, danger = "refund", "invoice", "Refund invoice", "Refund", True

    def unavailable(self, target: Target) -> str:
        if target.refundable_cents <= 0:
            return "Nothing is left to refund on this invoice (refunds already cover it or are pending)."
        return ""

    def fields(self, target: Target) -> list[Field]:
        assert target.invoice is not None
        currency = target.invoice.currency.upper()
        default = str(Decimal(target.refundable_cents).scaleb(-2))
        return [
            Field(
                "amount",
                f"Amount, in {currency} (e.g. {default})",
                required=True,
                value=default,
                help=f"At most {money(target.refundable_cents, target.invoice.currency)} "
                "(what is not yet refunded or pending).",
                attrs={"inputmode": "decimal"},
            ),
            _reason_field(True),
            Field(
                "also_cancel",
                "Also cancel subscription immediately",
                "checkbox",
                help="The refund is made first; if the cancellation then fails you will see a warning, the "
                "refund stays recorded, and you can retry the cancellation.",
            ),
        ]

    def parse(self, target: Target, values: dict[str, str]) -> RefundInput:
        assert target.invoice is not None
        cents = payments.parse_amount(values.get("amount", ""), target.invoice.currency)
        also_cancel = values.get("also_cancel") in ("yes", "on", "true")
        refunds.check_refund(target.invoice, target.refundable_cents, cents, also_cancel)
        return RefundInput(amount_cents=cents, reason=_reason(values, required=True), also_cancel=also_cancel)

    def summary(self, target: Target, parsed: RefundInput) -> list[tuple[str, str]]:
        assert target.invoice is not None
        how = (
            "through Stripe; pending until Stripe confirms"
            if target.invoice.source == "stripe"
            else "bookkeeping entry, effective at once"
        )
        return [
            ("Invoice", f"#{target.invoice.id} ({target.invoice.source})"),
            ("Refund", money(parsed.amount_cents, target.invoice.currency)),
            ("How", how),
            ("Reason", parsed.reason),
            ("Also cancel subscription now", "yes" if parsed.also_cancel else "no"),
        ]

    async def act(self, session: AsyncSession, target: Target, parsed: RefundInput, ctx: ActContext) -> Outcome:
        assert target.invoice is not None
        refund = await refunds.issue(
            session,
            target.invoice.id,
            amount_cents=parsed.amount_cents,
            reason=parsed.reason,
            also_cancel=parsed.also_cancel,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        state = "pending until Stripe confirms it" if refund.status == "pending" else "recorded"
        # a Stripe refund is sent after this transaction commits (operations.py), never under its locks
        return {
            "level": "success",
            "refund_id": refund.id,
            "also_cancel": parsed.also_cancel,
            "send_to_stripe": refunds.needs_stripe(refund),
            "message": f"Refund #{refund.id} of {money(refund.amount_cents, refund.currency)} {state}.",
        }


class RetryCancellation(Operation[NoInput]):
    permission = Permission.REFUND
    action, kind, title, button, danger = (
        "retry-cancellation",
        "refund",
        "Retry cancellation",
        "Retry cancellation",
        True,
    )

    def parse(self, target: Target, values: dict[str, str]) -> NoInput:
        return NoInput()

    def summary(self, target: Target, parsed: NoInput) -> list[tuple[str, str]]:
        assert target.refund is not None
        return [("Refund", f"#{target.refund.id}"), ("Last error", target.refund.cancel_error or "—")]

    outside_transaction = True

    async def act_outside(self, db: Transactions, target: Target, parsed: NoInput, ctx: ActContext) -> Outcome:
        assert target.refund is not None
        refund = await refunds.retry_cancellation(db, target.refund.id, gateway=ctx.gateway, actor=ctx.actor, ip=ctx.ip)
        return cancellation_outcome(refund, {"level": "success", "message": ""})


def cancellation_outcome(refund: Refund, outcome: Outcome) -> Outcome:
    """The outcome after the cancellation that follows a refund: a warning when it failed (the refund stands)."""
    if refund.cancel_outcome == "failed":
        return {
            **outcome,
            "level": "warning",
            "retry_refund_id": refund.id,
            "message": (outcome["message"] + " " if outcome["message"] else "")
            + f"The refund is recorded, but cancelling the subscription failed: {refund.cancel_error} "
            "Use “Retry cancellation” on the refund.",
        }
    return {
        **outcome,
        "message": (outcome["message"] + " " if outcome["message"] else "")
        + "The subscription was canceled immediately.",
    }


@dataclass(frozen=True)
class ChangePlanInput:
    plan_slug: str
    plan: str
    proration_date: int | None
    # from Stripe's preview, for the confirmation page
    kind: str = ""
    due_now: str = ""
    next_charge: str = ""
    effective: str = ""


class ChangePlan(Operation[ChangePlanInput]):
    """An admin changes a Stripe subscription's plan with the same preview as the billing page: an upgrade at once
    (prorated, invoiced now), a downgrade at the period end."""

    permission = Permission.MANAGE_SUBSCRIPTIONS
    action, kind, title, button = "change-plan", "subscription", "Change plan", "Preview"

    def unavailable(self, target: Target) -> str:
        sub = target.subscription
        if sub is not None and (sub.source != "stripe" or sub.status != "active"):
            return f"Only an active Stripe subscription can change plan; #{sub.id} is {sub.source}, {sub.status}."
        return super().unavailable(target)

    def fields(self, target: Target) -> list[Field]:
        current = target.subscription.plan_id if target.subscription else None
        paid = [p for p in target.plans if not p.is_free and p.id != current]
        return [Field("plan_id", "New plan", "select", required=True, options=_plan_options(paid))]

    def parse(self, target: Target, values: dict[str, str]) -> ChangePlanInput:
        plan = _plan(target, values)
        raw = values.get("proration_date", "").strip()
        if raw and not raw.isdigit():
            raise ValidationError("The preview is out of date; preview again.", field="plan_id")
        return ChangePlanInput(plan_slug=plan.slug, plan=plan.name, proration_date=int(raw) if raw else None)

    async def preview(
        self, db: Transactions, target: Target, parsed: ChangePlanInput, gateway: StripeGateway, actor: AdminActor
    ) -> tuple[ChangePlanInput, dict[str, str]]:
        assert target.subscription is not None
        preview = await plan_changes.preview_change(
            db, gateway, target.subscription.id, app=None, plan_slug=parsed.plan_slug, actor=actor
        )
        shown = dataclasses.replace(
            parsed,
            kind=preview.kind,
            due_now=money(preview.amount_due_now, preview.currency),
            next_charge=f"{money(preview.next_charge_amount, preview.currency)} on {when(preview.next_charge_at)}",
            effective=when(preview.effective_at),
        )
        return shown, {"proration_date": str(preview.proration_date or "")}

    def summary(self, target: Target, parsed: ChangePlanInput) -> list[tuple[str, str]]:
        assert target.subscription is not None
        return [
            ("Subscription", _sub_label(target.subscription)),
            ("New plan", parsed.plan),
            ("Kind", "upgrade: takes effect now" if parsed.kind == "upgrade" else "downgrade: at period end"),
            ("Due now", parsed.due_now),
            ("Next charge", parsed.next_charge),
            ("Takes effect", parsed.effective),
        ]

    outside_transaction = True

    async def act_outside(self, db: Transactions, target: Target, parsed: ChangePlanInput, ctx: ActContext) -> Outcome:
        assert target.subscription is not None
        outcome = await plan_changes.change_plan(
            db,
            ctx.gateway,
            target.subscription.id,
            app=None,
            plan_slug=parsed.plan_slug,
            proration_date=parsed.proration_date,
            actor=ctx.actor,
            ip=ctx.ip,
        )
        sub = outcome.subscription
        if outcome.declined:
            return {"level": "warning", "message": f"Subscription #{sub.id}: {plan_changes.DECLINED}"}
        if outcome.kind == plan_changes.UPGRADE:
            return {"level": "success", "message": f"Subscription #{sub.id} is now on {parsed.plan}."}
        return {
            "level": "success",
            "message": f"Subscription #{sub.id} changes to {parsed.plan} on {when(sub.pending_change_at)}.",
        }


def _plan(target: Target, values: dict[str, str]) -> Plan:
    plan_id = _int(values, "plan_id", "Plan")
    plan = next((p for p in target.plans if p.id == plan_id), None)
    if plan is None:
        raise ValidationError("Choose a plan.", field="plan_id")
    return plan


def _span(months: int, days: int) -> str:
    return f"{months} months" if months else f"{days} days"


OPERATIONS: dict[str, Operation[Any]] = {
    op.action: op
    for op in (
        CancelAtPeriodEnd(),
        Resume(),
        Extend(),
        Grant(),
        RecordPayment(),
        IssueRefund(),
        RetryCancellation(),
        ChangePlan(),
    )
}


__all__ = [
    "OPERATIONS",
    "ActContext",
    "Field",
    "Operation",
    "Outcome",
    "PaymentError",
    "Target",
    "cancellation_outcome",
]
