"""No subscription action holds a transaction or a row lock while Stripe answers (payment/subscriptions/turns.py).

The sandbox answers every API call 0.6 s late; a probe on its own connection samples pg_stat_activity and pg_locks
every 20 ms while an action runs, and records the longest any connection of the app sat idle inside an open
transaction and the longest a transaction of the app held locks on subscription rows. Both stay under 0.3 s (a
Stripe call inside a transaction shows up as at least 0.6 s, as the first test shows with that shape on purpose).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy import func, select, update

from payment.admins.permissions import AdminActor, Role
from payment.dburl import libpq_url
from payment.errors import Conflict, StripeError
from payment.models import Plan, Subscription, SubscriptionAdjustment, utcnow
from payment.runtime import Services
from payment.subscriptions import changes, turns
from payment.subscriptions import service as subscriptions
from tests.support import factories
from tests.support.stripe import StripeSetup, inject_fault, paid_stripe_subscription, sandbox_control, stripe_price

ACTOR = AdminActor(1, Role.OWNER)
LATENCY = 0.6
HELD_AT_MOST = 0.3
T = TypeVar("T")

PROBE = """
SELECT a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS open_for,
       EXISTS (
           SELECT 1 FROM pg_locks l
           WHERE l.pid = a.pid AND l.granted AND l.relation = 'subscriptions'::regclass
             AND l.mode IN ('RowShareLock', 'RowExclusiveLock')
       ) AS locks_subscriptions
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.application_name = 'aquoris-payment' AND a.xact_start IS NOT NULL
  AND a.pid <> pg_backend_pid()
"""


@dataclass
class Held:
    samples: int = 0
    idle_in_transaction: float = 0.0  # the longest an app connection sat idle inside an open transaction (s)
    subscription_locks: float = 0.0  # the longest an app transaction held locks on subscription rows (s)


@asynccontextmanager
async def probing(database_url: str) -> AsyncIterator[Held]:
    held = Held()
    conn = await asyncpg.connect(libpq_url(database_url), server_settings={"application_name": "probe"})
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for row in await conn.fetch(PROBE):
                if row["state"] == "idle in transaction":
                    held.idle_in_transaction = max(held.idle_in_transaction, row["open_for"])
                if row["locks_subscriptions"]:
                    held.subscription_locks = max(held.subscription_locks, row["open_for"])
            held.samples += 1
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    task = asyncio.create_task(sample())
    try:
        yield held
    finally:
        stop.set()
        await task
        await conn.close()


@contextmanager
def slow_stripe(sandbox: str, seconds: float = LATENCY) -> Iterator[None]:
    sandbox_control(sandbox, "POST", "latency", data={"seconds": str(seconds)})
    try:
        yield
    finally:
        sandbox_control(sandbox, "POST", "latency", data={"seconds": "0"})


async def watched(services: Services, sandbox: str, action: Awaitable[T]) -> tuple[T, Held]:
    """Run the action with Stripe slow, and what the app's connections held meanwhile (checked to have been
    sampled throughout an action that did wait for Stripe)."""
    with slow_stripe(sandbox):
        async with probing(str(services.settings.database_url)) as held:
            started = time.monotonic()
            result = await action
            took = time.monotonic() - started
    assert took >= LATENCY, "the action did not wait for Stripe"
    assert held.samples >= 10, held
    return result, held


def assert_nothing_held(held: Held) -> None:
    assert held.idle_in_transaction < HELD_AT_MOST, held
    assert held.subscription_locks < HELD_AT_MOST, held


async def _paid(services: Services, sandbox: str, **kwargs: object) -> StripeSetup:
    async with services.db.transaction() as session:
        return await paid_stripe_subscription(session, services.stripe, sandbox, **kwargs)  # type: ignore[arg-type]


async def _plan(services: Services, amount: int) -> Plan:
    price = await stripe_price(services.stripe, amount=amount)
    async with services.db.transaction() as session:
        return await factories.create_plan(session, price_cents=amount, stripe_price_id=price)


async def _row(services: Services, sub_id: int) -> Subscription:
    async with services.db.session() as session:
        row = await session.get(Subscription, sub_id)
        assert row is not None
        return row


async def _adjustments(services: Services, sub_id: int, kind: str) -> int:
    async with services.db.session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(SubscriptionAdjustment)
            .where(SubscriptionAdjustment.subscription_id == sub_id, SubscriptionAdjustment.kind == kind)
        )
        return int(found or 0)


async def test_the_probe_sees_a_stripe_call_made_inside_a_transaction(services: Services, sandbox: str) -> None:
    """The shape this module forbids, on purpose: the probe catches it, so the tests below can fail."""
    setup = await _paid(services, sandbox)

    async def old_shape() -> None:
        async with services.db.transaction() as session:
            await subscriptions.lock_subscription(session, setup.subscription.id)
            await services.stripe.retrieve_subscription(setup.stripe_subscription["id"])

    _, held = await watched(services, sandbox, old_shape())
    assert held.idle_in_transaction >= HELD_AT_MOST and held.subscription_locks >= HELD_AT_MOST


async def test_cancel_resume_extend_and_cancel_now_hold_nothing_while_stripe_answers(
    services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    sub_id, stripe_id = setup.subscription.id, setup.stripe_subscription["id"]
    db, gateway = services.db, services.stripe

    sub, held = await watched(
        services, sandbox, subscriptions.cancel_at_period_end(db, sub_id, gateway=gateway, actor=ACTOR)
    )
    assert_nothing_held(held)
    assert sub.cancel_at_period_end and (await gateway.retrieve_subscription(stripe_id))["cancel_at_period_end"]

    sub, held = await watched(services, sandbox, subscriptions.resume(db, sub_id, gateway=gateway, actor=ACTOR))
    assert_nothing_held(held)
    assert not sub.cancel_at_period_end and not (await gateway.retrieve_subscription(stripe_id))["cancel_at_period_end"]

    before = sub.current_period_end
    assert before is not None
    extend = subscriptions.extend(db, sub_id, days=10, reason="Outage", gateway=gateway, actor=ACTOR)
    sub, held = await watched(services, sandbox, extend)
    assert_nothing_held(held)
    assert sub.current_period_end == before + timedelta(days=10) and sub.status == "active"

    sub, held = await watched(services, sandbox, subscriptions.cancel_now(db, sub_id, gateway=gateway, actor=ACTOR))
    assert_nothing_held(held)
    assert sub.status == "canceled" and (await gateway.retrieve_subscription(stripe_id))["status"] == "canceled"
    row = await _row(services, sub_id)
    assert row.stripe_turn_nonce is None and row.stripe_turn_until is None
    for kind in ("cancel", "resume", "extend", "cancel_now"):
        assert await _adjustments(services, sub_id, kind) == 1, kind


async def test_plan_change_preview_downgrade_and_its_withdrawal_hold_nothing(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    bigger, smaller = await _plan(services, 49900), await _plan(services, 9900)
    sub_id, db, gateway = setup.subscription.id, services.db, services.stripe

    preview = changes.preview_change(db, gateway, sub_id, app=None, plan_slug=bigger.slug, actor=ACTOR)
    shown, held = await watched(services, sandbox, preview)
    assert_nothing_held(held)
    assert shown.kind == changes.UPGRADE and shown.amount_due_now > 0

    upgrade = changes.change_plan(
        db, gateway, sub_id, app=None, plan_slug=bigger.slug, proration_date=shown.proration_date, actor=ACTOR
    )
    outcome, held = await watched(services, sandbox, upgrade)
    assert_nothing_held(held)
    assert not outcome.declined and outcome.subscription.plan_id == bigger.id

    downgrade = changes.change_plan(
        db, gateway, sub_id, app=None, plan_slug=smaller.slug, proration_date=None, actor=ACTOR
    )
    outcome, held = await watched(services, sandbox, downgrade)
    assert_nothing_held(held)
    assert outcome.subscription.pending_plan_id == smaller.id

    kept, held = await watched(services, sandbox, changes.cancel_pending_change(db, gateway, sub_id, actor=ACTOR))
    assert_nothing_held(held)
    assert kept.pending_plan_id is None and kept.plan_id == bigger.id


async def test_a_grant_replacing_a_stripe_subscription_holds_nothing(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    grant = subscriptions.grant(
        services.db,
        setup.customer.id,
        plan_id=setup.plan.id,
        months=1,
        reason="Moved to an invoice",
        replace=True,
        gateway=services.stripe,
        actor=ACTOR,
    )
    granted, held = await watched(services, sandbox, grant)
    assert_nothing_held(held)
    assert granted.source == "grant" and granted.status == "active"
    assert (await _row(services, setup.subscription.id)).status == "canceled"
    assert (await services.stripe.retrieve_subscription(setup.stripe_subscription["id"]))["status"] == "canceled"


async def test_two_cancels_at_once_act_once(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    sub_id = setup.subscription.id

    def cancel() -> Awaitable[Subscription]:
        return subscriptions.cancel_at_period_end(services.db, sub_id, gateway=services.stripe, actor=ACTOR)

    with slow_stripe(sandbox):
        results = await asyncio.gather(cancel(), cancel(), return_exceptions=True)
    done = [r for r in results if isinstance(r, Subscription)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 1 and len(refused) == 1, results
    # the second waited for the first's turn and then saw its result
    assert isinstance(refused[0], Conflict) and "already set to cancel" in refused[0].message
    assert await _adjustments(services, sub_id, "cancel") == 1
    events = await services.stripe.list_events({"type": "customer.subscription.updated", "limit": 100})
    cancels = [
        e
        for e in events["data"]
        if e["data"]["object"]["id"] == setup.stripe_subscription["id"]
        and "cancel_at_period_end" in e["data"].get("previous_attributes", {})
    ]
    assert len(cancels) == 1  # Stripe was told once


async def test_a_second_action_waits_for_the_turn_then_says_another_change_is_in_progress(
    services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    sub_id = setup.subscription.id
    async with services.db.transaction() as session:
        await session.execute(
            update(Subscription)
            .where(Subscription.id == sub_id)
            .values(
                stripe_turn_nonce="someone-else", stripe_turn_by="admin:2", stripe_turn_until=utcnow() + turns.LEASE
            )
        )

    async def nothing(session: object, sub: Subscription) -> None:
        return None

    async def never(turn: turns.Turn, _: None) -> None:
        raise AssertionError("Stripe was called while another turn held the subscription")

    started = time.monotonic()
    with pytest.raises(turns.TurnBusy, match="Another change to this subscription is in progress"):
        await turns.act(
            services.db,
            sub_id,
            actor=ACTOR,
            check=nothing,
            gateway=services.stripe,
            call=never,
            apply=nothing_applied,
            wait=0.5,
        )
    assert time.monotonic() - started >= 0.5  # it waited before saying so

    # a turn whose holder died (its lease expired) is taken over
    async with services.db.transaction() as session:
        await session.execute(
            update(Subscription)
            .where(Subscription.id == sub_id)
            .values(stripe_turn_until=utcnow() - timedelta(seconds=1))
        )
    sub = await subscriptions.cancel_at_period_end(services.db, sub_id, gateway=services.stripe, actor=ACTOR)
    assert sub.cancel_at_period_end
    row = await _row(services, sub_id)
    assert row.stripe_turn_nonce is None


async def nothing_applied(session: object, stripe: object, sub: Subscription, _: None, answer: object) -> None:
    return None


async def test_stripe_failing_mid_action_applies_nothing_frees_the_turn_and_a_retry_works(
    services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    sub_id, stripe_id = setup.subscription.id, setup.stripe_subscription["id"]
    # enough failures for the gateway's own retries too
    inject_fault(sandbox, method="POST", path_prefix=f"/v1/subscriptions/{stripe_id}", status=500, times=5)
    try:
        with pytest.raises(StripeError):
            await subscriptions.cancel_at_period_end(services.db, sub_id, gateway=services.stripe, actor=ACTOR)
    finally:
        sandbox_control(sandbox, "DELETE", "faults")
    row = await _row(services, sub_id)
    assert not row.cancel_at_period_end and row.cancels_on is None
    assert row.stripe_turn_nonce is None and row.stripe_turn_until is None
    assert await _adjustments(services, sub_id, "cancel") == 0
    assert not (await services.stripe.retrieve_subscription(stripe_id))["cancel_at_period_end"]

    sub = await subscriptions.cancel_at_period_end(services.db, sub_id, gateway=services.stripe, actor=ACTOR)
    assert sub.cancel_at_period_end
    assert await _adjustments(services, sub_id, "cancel") == 1
