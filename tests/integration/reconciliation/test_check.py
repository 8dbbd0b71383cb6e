"""The drift check against the sandbox over HTTP: what it finds, what "take Stripe's" and "ignore" do, what the
next check closes, and how it waits out Stripe's rate limit."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from payment.admins.permissions import AdminActor, PermissionDenied
from payment.errors import ValidationError
from payment.models import AuditLog, Drift, Invoice, Refund, Subscription
from payment.reconciliation import service as reconciliation
from payment.reconciliation.check import run_check
from tests.integration.reconciliation.drifts import make_drifts, open_drifts
from tests.support.stripe import SANDBOX_KEY, World

OWNER = AdminActor(1, "owner")


async def test_a_clean_account_has_no_drift(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    result = await run_check(world.services.db, world.services.stripe)
    assert result.customers >= 1
    assert await open_drifts(world.services, [customer.id]) == []


async def test_each_kind_of_drift_is_found_and_taking_stripes_removes_it(world: World) -> None:
    drifted = await make_drifts(world)
    services = world.services
    await run_check(services.db, services.stripe)
    found = {(d.kind, d.stripe_object_id): d for d in await open_drifts(services, drifted.customer_ids)}
    assert set(found) == {(kind, object_id) for kind, object_id in drifted.stripe_ids.items()}
    canceled = found["subscription_differs", drifted.stripe_ids["subscription_differs"]]
    assert canceled.ours["status"] == "active" and canceled.theirs["status"] == "canceled"
    assert canceled.expected_event == "customer.subscription.deleted"
    missing_refund = found["refund_missing", drifted.stripe_ids["refund_missing"]]
    assert missing_refund.theirs["amount_cents"] == 29900 and missing_refund.expected_event == "charge.refunded"
    assert found["invoice_differs", drifted.stripe_ids["invoice_differs"]].theirs == {"status": "uncollectible"}

    for drift in found.values():
        async with services.db.session() as session:
            current = await reconciliation.get(session, drift.id)
        side = await reconciliation.fetch_stripe_side(services.stripe, current)
        async with services.db.transaction() as session:
            await reconciliation.take_stripes(session, drift.id, side, services.stripe, actor=OWNER)

    async with services.db.session() as session:
        sub = await session.scalar(
            select(Subscription).where(
                Subscription.stripe_subscription_id == drifted.stripe_ids["subscription_differs"]
            )
        )
        made = await session.scalar(
            select(Subscription).where(
                Subscription.stripe_subscription_id == drifted.stripe_ids["subscription_missing"]
            )
        )
        refund = await session.scalar(
            select(Refund).where(Refund.stripe_refund_id == drifted.stripe_ids["refund_missing"])
        )
        invoice = await session.scalar(
            select(Invoice).where(Invoice.stripe_invoice_id == drifted.stripe_ids["invoice_differs"])
        )
        audits = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action == "reconciliation.take_stripes", AuditLog.actor == "admin:1")
            )
        ).all()
    assert sub is not None and sub.status == "canceled"
    assert made is not None and made.customer_id == drifted.subscribed.id and made.status == "active"
    assert refund is not None and refund.amount_cents == 29900 and refund.status == "succeeded"
    assert invoice is not None and invoice.status == "uncollectible"
    assert sorted(a.details["kind"] for a in audits) == sorted(drifted.stripe_ids)

    await run_check(services.db, services.stripe)
    assert await open_drifts(services, drifted.customer_ids) == []


async def test_ignored_drift_needs_a_reason_and_stays_ignored(world: World) -> None:
    drifted = await make_drifts(world)
    services = world.services
    await run_check(services.db, services.stripe)
    drift = next(d for d in await open_drifts(services, drifted.customer_ids) if d.kind == "invoice_differs")
    with pytest.raises(ValidationError):
        async with services.db.transaction() as session:
            await reconciliation.ignore(session, drift.id, "  ", actor=OWNER)
    with pytest.raises(PermissionDenied):
        async with services.db.transaction() as session:
            await reconciliation.ignore(session, drift.id, "known", actor=AdminActor(2, "support"))
    async with services.db.transaction() as session:
        await reconciliation.ignore(session, drift.id, "Written off with the accountant", actor=OWNER)
    await run_check(services.db, services.stripe)
    async with services.db.session() as session:
        again = await session.get(Drift, drift.id)
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "reconciliation.ignored"))
    assert again is not None and again.state == "ignored" and again.reason == "Written off with the accountant"
    assert audit is not None and audit.entity_id == str(drift.id)
    assert drifted.stripe_ids["invoice_differs"] not in {
        d.stripe_object_id for d in await open_drifts(services, drifted.customer_ids)
    }


async def test_a_drift_gone_from_stripe_is_closed_by_the_next_check(world: World) -> None:
    drifted = await make_drifts(world)
    services = world.services
    await run_check(services.db, services.stripe)
    # the lost webhook arrives after all: applying it removes the difference, and the next check closes the drift
    await world.apply_all([e for e in await world.events() if e["type"] == "customer.subscription.deleted"])
    await run_check(services.db, services.stripe)
    async with services.db.session() as session:
        drift = await session.scalar(
            select(Drift).where(Drift.stripe_object_id == drifted.stripe_ids["subscription_differs"])
        )
    assert drift is not None and drift.state == "fixed" and drift.resolved_by == "system:reconciliation"


async def test_a_deleted_stripe_customer_is_found_and_unlinked(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    await world.control("POST", f"customers/{checkout['customer']}/dashboard_delete")
    services = world.services
    await run_check(services.db, services.stripe)
    kinds = {d.kind: d for d in await open_drifts(services, [customer.id])}
    assert set(kinds) == {"customer_deleted", "subscription_differs"}
    for drift in kinds.values():
        side = await reconciliation.fetch_stripe_side(services.stripe, drift)
        async with services.db.transaction() as session:
            await reconciliation.take_stripes(session, drift.id, side, services.stripe, actor=OWNER)
    async with services.db.session() as session:
        unlinked = await session.scalar(select(AuditLog).where(AuditLog.action == "customer.stripe_unlinked"))
    assert unlinked is not None and unlinked.details["stripe_customer_id"] == checkout["customer"]
    await run_check(services.db, services.stripe)
    assert await open_drifts(services, [customer.id]) == []


async def test_rate_limits_are_waited_out_as_stripe_asks(world: World) -> None:
    plan = await world.plan()
    customer = await world.customer()
    await world.subscribe(customer, plan)
    await world.apply_all(await world.events())
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {SANDBOX_KEY}"}) as http:
        response = await http.post(
            f"{world.sandbox_url}/_sandbox/faults",
            data={
                "method": "GET",
                "path_prefix": "/v1/subscriptions",
                "status": "429",
                "times": "3",
                "retry_after": "7",
                "should_retry": "false",
            },
        )
        response.raise_for_status()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await run_check(world.services.db, world.services.stripe, sleep=sleep)
    assert waits == [7.0, 7.0, 7.0]
    assert await open_drifts(world.services, [customer.id]) == []
