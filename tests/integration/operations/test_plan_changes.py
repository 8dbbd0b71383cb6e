"""Plan changes through Stripe (the sandbox): the preview's amounts equal what Stripe then invoices, upgrades apply at
once and change nothing when declined, downgrades wait for the period end in a schedule that can be withdrawn, and
each app's rules decide what is offered."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, PermissionDenied, Role
from payment.config import Settings
from payment.errors import Conflict, ValidationError
from payment.models import App, AuditLog, Plan, Subscription
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import changes
from payment.subscriptions import service as subscriptions
from payment.subscriptions.stripe_sync import upsert_from_stripe
from tests.support import factories
from tests.support.db import in_db
from tests.support.stripe import StripeSetup, paid_stripe_subscription, sandbox_control

ACTOR = "customer:1"
_n = count(1)


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)


async def _plan(db: AsyncSession, gateway: StripeGateway, amount: int, interval: str = "month") -> Plan:
    product = await gateway.create_product({"name": f"Tier {next(_n)}"})
    price = await gateway.create_price(
        {"product": product["id"], "currency": "thb", "unit_amount": amount, "recurring": {"interval": interval}}
    )
    return await factories.create_plan(db, price_cents=amount, interval=interval, stripe_price_id=str(price["id"]))


async def _world(db: AsyncSession, gateway: StripeGateway, sandbox: str) -> tuple[App, StripeSetup]:
    app, _ = await factories.create_app(db)
    setup = await paid_stripe_subscription(db, gateway, sandbox, amount=29900)
    return app, setup


async def _sync(db: AsyncSession, gateway: StripeGateway, sub: Subscription) -> Subscription:
    """Map Stripe's subscription as it is now, as the webhooks would."""
    assert sub.stripe_subscription_id is not None
    row, _ = await upsert_from_stripe(
        db, gateway, await gateway.retrieve_subscription(sub.stripe_subscription_id), actor="stripe"
    )
    return row


async def _actions(db: AsyncSession, sub: Subscription) -> list[str]:
    rows = await db.scalars(
        select(AuditLog.action).where(AuditLog.entity_type == "subscription", AuditLog.entity_id == str(sub.id))
    )
    return list(rows)


def _prorated(amount: int, left: int, period: int) -> int:
    """amount × left / period to the nearest minor unit, halves up (Stripe's proration of one line)."""
    return (2 * amount * left + period) // (2 * period)


def _advance(sandbox: str, seconds: int) -> None:
    sandbox_control(sandbox, "POST", "clock/advance", data={"seconds": str(seconds)})


def test_an_upgrade_costs_more_per_month_and_a_yearly_price_counts_as_a_twelfth() -> None:
    def plan(cents: int, interval: str = "month") -> Plan:
        return Plan(price_cents=cents, interval=interval)

    assert changes.kind_of_change(plan(29900), plan(49900)) == changes.UPGRADE
    assert changes.kind_of_change(plan(29900), plan(9900)) == changes.DOWNGRADE
    assert changes.kind_of_change(plan(29900), plan(299000, "year")) == changes.DOWNGRADE  # 24,917 a month
    assert changes.kind_of_change(plan(29900), plan(399000, "year")) == changes.UPGRADE  # 33,250 a month
    assert changes.kind_of_change(plan(29900), plan(358800, "year")) == changes.DOWNGRADE  # the same per month


async def test_an_upgrade_charges_the_previewed_amount_at_once_and_changes_the_plan(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    app, setup = await _world(db, gateway, sandbox)
    bigger = await _plan(db, gateway, 49900)
    _advance(sandbox, 9 * 86400 + 4321)

    preview = await changes.preview_change(
        in_db(db), gateway, setup.subscription.id, app=app, plan_slug=bigger.slug, actor=ACTOR
    )
    outcome = await changes.change_plan(
        in_db(db),
        gateway,
        setup.subscription.id,
        app=app,
        plan_slug=bigger.slug,
        proration_date=preview.proration_date,
        actor=ACTOR,
    )

    assert preview.kind == changes.UPGRADE and not outcome.declined
    assert outcome.subscription.plan_id == bigger.id
    stripe_sub = await gateway.retrieve_subscription(str(setup.subscription.stripe_subscription_id))
    invoice = await gateway.retrieve_invoice(str(stripe_sub["latest_invoice"]))
    assert invoice["billing_reason"] == "subscription_update"
    assert invoice["amount_paid"] == preview.amount_due_now > 0
    # recomputed here: Stripe's proration of both prices over the seconds left in the period
    state = reader.subscription(stripe_sub)
    assert state.period_start is not None and state.period_end is not None and preview.effective_at is not None
    period = int((state.period_end - state.period_start).total_seconds())
    left = int((state.period_end - preview.effective_at).total_seconds())
    assert preview.amount_due_now == _prorated(49900, left, period) - _prorated(29900, left, period)
    assert preview.next_charge_amount == 49900 and preview.next_charge_at == state.period_end
    assert "subscription.upgraded" in await _actions(db, setup.subscription)


async def test_a_declined_upgrade_leaves_the_plan_and_says_so(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    app, setup = await _world(db, gateway, sandbox)
    bigger = await _plan(db, gateway, 49900)
    sandbox_control(
        sandbox, "POST", f"customers/{setup.customer.stripe_customer_id}/card", data={"card": "4000000000000341"}
    )

    outcome = await changes.change_plan(
        in_db(db), gateway, setup.subscription.id, app=app, plan_slug=bigger.slug, proration_date=None, actor=ACTOR
    )

    assert outcome.declined and outcome.subscription.plan_id == setup.plan.id
    assert (await _sync(db, gateway, setup.subscription)).plan_id == setup.plan.id
    stripe_sub = await gateway.retrieve_subscription(str(setup.subscription.stripe_subscription_id))
    assert stripe_sub["pending_update"] is None  # nothing left for a later retry to apply or charge
    assert (await gateway.retrieve_invoice(str(stripe_sub["latest_invoice"])))["status"] == "void"
    assert "subscription.upgrade_declined" in await _actions(db, setup.subscription)


async def test_a_downgrade_waits_for_the_period_end_can_be_withdrawn_and_applies_at_renewal(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    app, setup = await _world(db, gateway, sandbox)
    smaller = await _plan(db, gateway, 9900)
    sub_id = setup.subscription.id
    period_end = setup.subscription.current_period_end

    preview = await changes.preview_change(in_db(db), gateway, sub_id, app=app, plan_slug=smaller.slug, actor=ACTOR)
    assert preview.kind == changes.DOWNGRADE and preview.amount_due_now == 0
    assert preview.next_charge_amount == 9900 and preview.next_charge_at == period_end == preview.effective_at

    outcome = await changes.change_plan(
        in_db(db), gateway, sub_id, app=app, plan_slug=smaller.slug, proration_date=None, actor=ACTOR
    )
    sub = outcome.subscription
    assert (sub.plan_id, sub.pending_plan_id, sub.pending_change_at) == (setup.plan.id, smaller.id, period_end)

    await changes.cancel_pending_change(in_db(db), gateway, sub_id, actor=ACTOR)
    assert (sub.pending_plan_id, sub.pending_change_at, sub.stripe_schedule_id) == (None, None, None)

    await changes.change_plan(
        in_db(db), gateway, sub_id, app=app, plan_slug=smaller.slug, proration_date=None, actor=ACTOR
    )
    assert sub.pending_plan_id == smaller.id
    assert period_end is not None
    _advance(sandbox, int(period_end.timestamp() - datetime.now(UTC).timestamp()) + 3600)
    renewed = await _sync(db, gateway, sub)

    assert renewed.plan_id == smaller.id and renewed.pending_plan_id is None
    stripe_sub = await gateway.retrieve_subscription(str(sub.stripe_subscription_id))
    invoice = await gateway.retrieve_invoice(str(stripe_sub["latest_invoice"]))
    assert invoice["billing_reason"] == "subscription_cycle" and invoice["amount_paid"] == preview.next_charge_amount
    assert {"subscription.downgrade_scheduled", "subscription.pending_change_canceled"} <= set(
        await _actions(db, setup.subscription)
    )


async def test_cancelling_at_period_end_replaces_a_pending_downgrade_and_keeps_the_users_reason(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    app, setup = await _world(db, gateway, sandbox)
    smaller = await _plan(db, gateway, 9900)
    await changes.change_plan(
        in_db(db), gateway, setup.subscription.id, app=app, plan_slug=smaller.slug, proration_date=None, actor=ACTOR
    )

    sub = await subscriptions.cancel_at_period_end(
        in_db(db),
        setup.subscription.id,
        gateway=gateway,
        reason="Cancelled by the user.",
        customer_reason="Too dear",
        actor=ACTOR,
    )

    assert sub.cancel_at_period_end and sub.cancel_reason == "Too dear"
    assert (sub.pending_plan_id, sub.stripe_schedule_id) == (None, None)
    resumed = await subscriptions.resume(in_db(db), sub.id, gateway=gateway, reason="Resumed by the user.", actor=ACTOR)
    assert not resumed.cancel_at_period_end and resumed.cancel_reason is None


@pytest.mark.parametrize(
    ("rule", "target_amount", "target_interval", "current_interval"),
    [
        ("allow_downgrade", 9900, "month", "month"),
        ("allow_interval_change", 999000, "year", "month"),
        ("allow_downgrade_from_yearly", 99000, "year", "year"),
    ],
)
async def test_each_app_rule_refuses_the_change_it_names(
    db: AsyncSession,
    gateway: StripeGateway,
    sandbox: str,
    rule: str,
    target_amount: int,
    target_interval: str,
    current_interval: str,
) -> None:
    app, _ = await factories.create_app(db)
    current = await _plan(db, gateway, 299000 if current_interval == "year" else 29900, current_interval)
    setup = await paid_stripe_subscription(db, gateway, sandbox, plan=current)
    target = await _plan(db, gateway, target_amount, target_interval)
    setattr(app, rule, False)

    with pytest.raises(Conflict) as refused:
        await changes.preview_change(
            in_db(db), gateway, setup.subscription.id, app=app, plan_slug=target.slug, actor=ACTOR
        )

    assert refused.value.code == "change_not_offered"
    setattr(app, rule, True)
    preview = await changes.preview_change(
        in_db(db), gateway, setup.subscription.id, app=app, plan_slug=target.slug, actor=ACTOR
    )
    assert preview.plan.id == target.id


@pytest.mark.parametrize("role", list(Role))
async def test_role_matrix_for_changing_a_plan(
    db: AsyncSession, gateway: StripeGateway, sandbox: str, role: Role
) -> None:
    app, setup = await _world(db, gateway, sandbox)
    bigger = await _plan(db, gateway, 49900)
    admin = AdminActor(1, role)
    allowed = role in (Role.OWNER, Role.SUPPORT)
    if allowed:
        preview = await changes.preview_change(
            in_db(db), gateway, setup.subscription.id, app=app, plan_slug=bigger.slug, actor=admin
        )
        assert preview.amount_due_now > 0
        return
    with pytest.raises(PermissionDenied):
        await changes.preview_change(
            in_db(db), gateway, setup.subscription.id, app=app, plan_slug=bigger.slug, actor=admin
        )
    with pytest.raises(PermissionDenied):
        await changes.change_plan(
            in_db(db), gateway, setup.subscription.id, app=app, plan_slug=bigger.slug, proration_date=None, actor=admin
        )


async def test_an_owner_sets_the_apps_change_rules_validated_and_audited(db: AsyncSession) -> None:
    app, _ = await factories.create_app(db)
    owner, support = AdminActor(1, Role.OWNER), AdminActor(2, Role.SUPPORT)

    with pytest.raises(ValidationError):
        await changes.set_change_rules(
            db, app, allow_downgrade=False, allow_downgrade_from_yearly=True, allow_interval_change=True, actor=owner
        )
    with pytest.raises(PermissionDenied):
        await changes.set_change_rules(
            db, app, allow_downgrade=False, allow_downgrade_from_yearly=False, allow_interval_change=True, actor=support
        )
    await changes.set_change_rules(
        db, app, allow_downgrade=False, allow_downgrade_from_yearly=False, allow_interval_change=False, actor=owner
    )

    assert (app.allow_downgrade, app.allow_downgrade_from_yearly, app.allow_interval_change) == (False, False, False)
    logged = await db.scalar(
        select(AuditLog.details).where(AuditLog.action == "app.change_rules_changed", AuditLog.entity_id == str(app.id))
    )
    assert logged is not None and logged["to"]["allow_downgrade"] is False and logged["from"]["allow_downgrade"] is True
