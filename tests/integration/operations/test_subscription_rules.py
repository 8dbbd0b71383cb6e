"""Cancel at period end, resume, extend, grant and cancel now: on our rows and, for Stripe ones, in the sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import AdminActor, Role
from payment.config import Settings
from payment.errors import Conflict, StripeError, ValidationError
from payment.models import AuditLog, Subscription, SubscriptionAdjustment
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import service as subscriptions
from payment.subscriptions.stripe_sync import upsert_from_stripe
from tests.support import factories
from tests.support.db import in_db
from tests.support.stripe import inject_fault, paid_stripe_subscription

ACTOR = AdminActor(1, Role.OWNER)


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)


def _cancel_state(sub: Subscription) -> tuple[datetime | None, bool, datetime | None]:
    """The row's cancellation fields as a service call left them (read through a call so that the type checker
    forgets an earlier `assert sub.cancel_at is not None`: the service changed the row since)."""
    return sub.cancel_at, sub.cancel_at_period_end, sub.cancels_on


async def _adjustments(db: AsyncSession, sub: Subscription) -> list[tuple[str, int | None, str]]:
    rows = await db.execute(
        select(SubscriptionAdjustment.kind, SubscriptionAdjustment.days, SubscriptionAdjustment.actor)
        .where(SubscriptionAdjustment.subscription_id == sub.id)
        .order_by(SubscriptionAdjustment.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _audit_actions(db: AsyncSession, entity_id: int) -> list[str]:
    rows = await db.scalars(
        select(AuditLog.action)
        .where(AuditLog.entity_type == "subscription", AuditLog.entity_id == str(entity_id))
        .order_by(AuditLog.id)
    )
    return list(rows)


async def _manual(db: AsyncSession, *, source: str = "grant", app_id: int | None = None) -> Subscription:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db, app_id=app_id)
    return await factories.create_subscription(db, customer, plan, source=source)


async def test_stripe_cancel_at_period_end_then_resume(db: AsyncSession, gateway: StripeGateway, sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    sub = setup.subscription
    assert sub.status == "active" and not sub.cancel_at_period_end
    await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    assert sub.cancel_at_period_end and sub.status == "active" and sub.canceled_at is not None
    on_stripe = await gateway.retrieve_subscription(sub.stripe_subscription_id or "")
    assert on_stripe["cancel_at_period_end"] is True
    await subscriptions.resume(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    on_stripe = await gateway.retrieve_subscription(sub.stripe_subscription_id or "")
    assert on_stripe["cancel_at_period_end"] is False and not sub.cancel_at_period_end and sub.canceled_at is None
    assert await _adjustments(db, sub) == [("cancel", None, ACTOR), ("resume", None, ACTOR)]
    assert await _audit_actions(db, sub.id) == ["subscription.cancel_at_period_end", "subscription.resumed"]


async def test_manual_cancel_and_resume_are_local(db: AsyncSession, gateway: StripeGateway) -> None:
    sub = await _manual(db)
    end = sub.current_period_end
    await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, reason="Asked by email", actor=ACTOR)
    assert sub.cancel_at_period_end and sub.status == "active" and sub.current_period_end == end
    with pytest.raises(Conflict, match="already set to cancel"):
        await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    await subscriptions.resume(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    assert not sub.cancel_at_period_end
    with pytest.raises(Conflict, match="no pending cancellation"):
        await subscriptions.resume(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    reasons = list(
        await db.scalars(
            select(SubscriptionAdjustment.reason)
            .where(SubscriptionAdjustment.subscription_id == sub.id)
            .order_by(SubscriptionAdjustment.id)
        )
    )
    assert reasons == ["Asked by email", "Cancellation withdrawn by an admin."]


async def test_ended_subscription_cannot_be_canceled_or_extended(db: AsyncSession, gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    sub = await factories.create_subscription(db, customer, plan, source="manual", status="expired")
    with pytest.raises(Conflict, match="this one is expired"):
        await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    with pytest.raises(Conflict, match="this one is expired"):
        await subscriptions.extend(in_db(db), sub.id, days=5, reason="x", gateway=gateway, actor=ACTOR)
    assert await _adjustments(db, sub) == []


async def test_stripe_extend_moves_period_end_without_charging(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    sub = setup.subscription
    before = sub.current_period_end
    assert before is not None
    await subscriptions.extend(in_db(db), sub.id, days=30, reason="Outage compensation", gateway=gateway, actor=ACTOR)
    assert sub.current_period_end == before + timedelta(days=30)
    on_stripe = await gateway.retrieve_subscription(sub.stripe_subscription_id or "")
    assert reader.subscription(on_stripe).period_end == before + timedelta(days=30)
    assert on_stripe["trial_end"] == int((before + timedelta(days=30)).timestamp())
    invoices = await gateway.list_invoices({"subscription": sub.stripe_subscription_id})
    assert [i["amount_paid"] for i in invoices["data"]] == [29900]  # nothing billed for the added days
    adjustment = (
        await db.scalars(select(SubscriptionAdjustment).where(SubscriptionAdjustment.subscription_id == sub.id))
    ).one()
    assert (adjustment.kind, adjustment.days, adjustment.reason, adjustment.actor) == (
        "extend",
        30,
        "Outage compensation",
        ACTOR,
    )
    assert adjustment.previous_period_end == before and adjustment.new_period_end == sub.current_period_end


async def test_extended_paying_subscription_stays_active_everywhere(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    from billing_ui.view import describe_current
    from payment.billing import entitlements
    from payment.dashboard import metrics
    from payment.models import utcnow
    from payment.subscriptions.stripe_sync import upsert_from_stripe

    setup = await paid_stripe_subscription(db, gateway, sandbox)
    sub = setup.subscription
    app, _ = await factories.create_app(db)
    now = utcnow()
    active_before = (await metrics.active_subscriptions(db, now=now)).by_source
    mrr_before = (await metrics.mrr(db, now=now)).amounts
    await subscriptions.extend(in_db(db), sub.id, days=30, reason="Outage compensation", gateway=gateway, actor=ACTOR)
    assert (sub.status, sub.trial_end) == ("active", None)
    # Stripe's own answer, as its webhook would bring it, keeps it active too
    on_stripe = await gateway.retrieve_subscription(sub.stripe_subscription_id or "")
    assert on_stripe["status"] == "trialing"  # how Stripe moves the charge; not what the customer is
    await upsert_from_stripe(db, gateway, on_stripe, actor="stripe")
    await db.refresh(sub)
    assert (sub.status, sub.trial_end) == ("active", None)
    assert (await metrics.active_subscriptions(db, now=now)).by_source == active_before
    assert (await metrics.mrr(db, now=now)).amounts == mrr_before
    shown = describe_current(await entitlements.current(db, setup.customer, app), "en")
    assert shown.status == "active" and shown.help.startswith("Renews on ")
    # a second extension stacks and stays active
    await subscriptions.extend(in_db(db), sub.id, days=5, reason="More", gateway=gateway, actor=ACTOR)
    assert sub.status == "active"


async def test_manual_extend_and_its_validation(db: AsyncSession, gateway: StripeGateway) -> None:
    sub = await _manual(db, source="manual")
    before = sub.current_period_end
    assert before is not None
    for days, reason, message in (
        (0, "r", "between 1 and 3650"),
        (3651, "r", "between 1 and 3650"),
        (5, "   ", "reason is required"),
    ):
        with pytest.raises(ValidationError, match=message):
            await subscriptions.extend(in_db(db), sub.id, days=days, reason=reason, gateway=gateway, actor=ACTOR)
    assert await _adjustments(db, sub) == []
    await subscriptions.extend(in_db(db), sub.id, days=3650, reason="Lifetime deal", gateway=gateway, actor=ACTOR)
    assert sub.current_period_end == before + timedelta(days=3650)
    assert await _adjustments(db, sub) == [("extend", 3650, ACTOR)]


async def test_stripe_refusal_writes_nothing_and_says_why(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    inject_fault(sandbox, method="POST", path_prefix="/v1/subscriptions", status=500, times=5)
    with pytest.raises(StripeError) as refused:
        await subscriptions.cancel_at_period_end(in_db(db), setup.subscription.id, gateway=gateway, actor=ACTOR)
    assert refused.value.message == "Stripe had an internal error. Nothing was changed; try again."
    assert not setup.subscription.cancel_at_period_end
    assert await _adjustments(db, setup.subscription) == []
    assert await _audit_actions(db, setup.subscription.id) == []


async def test_grant_gives_a_manual_subscription_without_invoice(db: AsyncSession, gateway: StripeGateway) -> None:
    customer = await factories.create_customer(db)
    plan = await factories.create_plan(db)
    sub = await subscriptions.grant(
        in_db(db), customer.id, plan_id=plan.id, months=3, reason="Partner", gateway=gateway, actor=ACTOR
    )
    assert (sub.source, sub.status, sub.plan_id, sub.stripe_subscription_id) == ("grant", "active", plan.id, None)
    assert sub.current_period_end is not None and sub.current_period_start is not None
    assert 89 <= (sub.current_period_end - sub.current_period_start).days <= 92
    from payment.models import Invoice

    assert await db.scalar(select(func.count()).select_from(Invoice).where(Invoice.customer_id == customer.id)) == 0
    assert [k for k, _, _ in await _adjustments(db, sub)] == ["grant"]
    assert await _audit_actions(db, sub.id) == ["subscription.granted"]


async def test_grant_refused_in_same_scope_unless_replacing(db: AsyncSession, gateway: StripeGateway) -> None:
    app, _ = await factories.create_app(db)
    other_app, _ = await factories.create_app(db)
    customer = await factories.create_customer(db)
    app_plan = await factories.create_plan(db, app_id=app.id)
    other_plan = await factories.create_plan(db, app_id=other_app.id)
    suite_plan = await factories.create_plan(db)
    first = await subscriptions.grant(
        in_db(db), customer.id, plan_id=app_plan.id, days=10, reason="Trial", gateway=gateway, actor=ACTOR
    )
    # another app's plan is another scope
    await subscriptions.grant(
        in_db(db), customer.id, plan_id=other_plan.id, days=10, reason="Trial", gateway=gateway, actor=ACTOR
    )
    with pytest.raises(Conflict, match="already has a live subscription") as refused:
        await subscriptions.grant(
            in_db(db), customer.id, plan_id=suite_plan.id, days=10, reason="Upgrade", gateway=gateway, actor=ACTOR
        )
    assert refused.value.code == "replace_needed"
    with pytest.raises(Conflict):
        await subscriptions.grant(
            in_db(db), customer.id, plan_id=app_plan.id, days=10, reason="Again", gateway=gateway, actor=ACTOR
        )
    new = await subscriptions.grant(
        in_db(db),
        customer.id,
        plan_id=suite_plan.id,
        days=10,
        reason="Upgrade",
        replace=True,
        gateway=gateway,
        actor=ACTOR,
    )
    live = await db.scalars(
        select(Subscription.id).where(Subscription.customer_id == customer.id, Subscription.status == "active")
    )
    assert list(live) == [new.id]
    assert first.status == "canceled" and first.ended_at is not None
    assert [k for k, _, _ in await _adjustments(db, first)] == ["grant", "replace"]


async def test_grant_replacing_a_stripe_subscription_cancels_it_on_stripe(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    await subscriptions.grant(
        in_db(db),
        setup.customer.id,
        plan_id=setup.plan.id,
        days=30,
        reason="Move to invoice",
        replace=True,
        gateway=gateway,
        actor=ACTOR,
    )
    on_stripe = await gateway.retrieve_subscription(setup.subscription.stripe_subscription_id or "")
    assert on_stripe["status"] == "canceled" and setup.subscription.status == "canceled"


async def test_cancel_now_stripe_and_manual(db: AsyncSession, gateway: StripeGateway, sandbox: str) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    await subscriptions.cancel_now(in_db(db), setup.subscription.id, gateway=gateway, actor=ACTOR)
    assert setup.subscription.status == "canceled" and setup.subscription.ended_at is not None
    on_stripe = await gateway.retrieve_subscription(setup.subscription.stripe_subscription_id or "")
    assert on_stripe["status"] == "canceled"
    manual = await _manual(db, source="manual")
    await subscriptions.cancel_now(in_db(db), manual.id, gateway=gateway, actor=ACTOR)
    assert manual.status == "canceled" and manual.ended_at is not None
    with pytest.raises(Conflict, match="already ended"):
        await subscriptions.cancel_now(in_db(db), manual.id, gateway=gateway, actor=ACTOR)
    assert await _adjustments(db, manual) == [("cancel_now", None, ACTOR)]


async def test_admin_actions_and_webhooks_map_cancel_at_the_same_way(
    db: AsyncSession, gateway: StripeGateway, sandbox: str
) -> None:
    setup = await paid_stripe_subscription(db, gateway, sandbox)
    sub, stripe_id = setup.subscription, setup.subscription.stripe_subscription_id or ""
    # set in Stripe (Dashboard or API) with the enum of 2025-07-30.basil: cancel_at_period_end stays false
    data = await gateway.update_subscription(stripe_id, {"cancel_at": "min_period_end"})
    assert data["cancel_at_period_end"] is False
    await upsert_from_stripe(db, gateway, data, actor="stripe")  # what the webhook does
    assert sub.cancel_at is not None and sub.cancels_on == sub.cancel_at == sub.current_period_end
    with pytest.raises(Conflict, match="already set to cancel on"):
        await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    await subscriptions.resume(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    on_stripe = await gateway.retrieve_subscription(stripe_id)
    assert (on_stripe["cancel_at"], on_stripe["cancel_at_period_end"]) == (None, False)
    assert _cancel_state(sub) == (None, False, None)
    await subscriptions.cancel_at_period_end(in_db(db), sub.id, gateway=gateway, actor=ACTOR)
    assert sub.cancels_on == sub.current_period_end and sub.cancel_at_period_end
