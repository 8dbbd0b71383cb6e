"""No subscription action holds a transaction or a row lock while Stripe answers (payment/subscriptions/turns.py).

Each test parks the action's Stripe write in the sandbox (`tests/support/holding.py`) and, while it is in flight,
looks at PostgreSQL: no connection of the test database is `idle in transaction`, and another connection can lock
the subscription row at once (`FOR UPDATE NOWAIT`); the row shows the action's lease instead. Then the action
finishes, Stripe's events are applied as the webhook would, and the change is on the row. The first test holds a
transaction across a held call on purpose, so the look can fail. Self-service actions go through the billing page,
admin actions through the admin's forms, both over HTTP in-process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from payment.admins import service as admins
from payment.admins.permissions import AdminActor, Role
from payment.billing import checkout
from payment.billing.customers import get_by_external_id
from payment.bootstrap import create_app
from payment.errors import Conflict, StripeError
from payment.models import AuditLog, CheckoutSession, Customer, Plan, Subscription, SubscriptionAdjustment, utcnow
from payment.runtime import Services
from payment.subscriptions import changes, turns
from payment.subscriptions import service as subscriptions
from tests.integration.admin.conftest import sign_in
from tests.integration.billing_ui.helpers import csrf_of, text_of
from tests.support import factories
from tests.support.app import asgi_client
from tests.support.holding import Seen, while_held
from tests.support.stripe import (
    FAILING_CARD,
    StripeSetup,
    World,
    inject_fault,
    paid_stripe_subscription,
    sandbox_control,
    stripe_price,
)

ACTOR = AdminActor(1, Role.OWNER)
EMAIL, PASSWORD = "tx-ops@aquoris.test", "correct-horse-battery"
_n = count(1)
T = TypeVar("T")


@dataclass(frozen=True)
class Billing:
    """A user's billing page (its path) over a paid Stripe subscription."""

    path: str
    setup: StripeSetup

    @property
    def sub_id(self) -> int:
        return self.setup.subscription.id

    @property
    def stripe_id(self) -> str:
        return str(self.setup.stripe_subscription["id"])


async def _billing(services: Services, client: httpx.AsyncClient, sandbox: str, *, amount: int = 29900) -> Billing:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session)
    user = f"tx-user-{next(_n)}"
    opened = await client.post(
        "/api/v1/sessions",
        json={"externalUserId": user, "appSlug": app.slug},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert opened.status_code == 201, opened.text
    async with services.db.transaction() as session:
        customer = await get_by_external_id(session, user)
        assert customer is not None
        setup = await paid_stripe_subscription(session, services.stripe, sandbox, customer=customer, amount=amount)
    return Billing(httpx.URL(opened.json()["url"]).path, setup)


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


async def _audits(services: Services, sub_id: int, action: str) -> int:
    async with services.db.session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity_type == "subscription", AuditLog.entity_id == str(sub_id), AuditLog.action == action)
        )
        return int(found or 0)


def _free_with_lease(seen: Seen) -> None:
    """Nothing held while Stripe answered; the row carried the action's lease instead."""
    seen.assert_free()
    assert seen.row is not None and seen.row["stripe_turn_nonce"] is not None, seen


async def _held(
    services: Services, sandbox: str, sub_id: int, action: Awaitable[httpx.Response], *, method: str, path: str
) -> httpx.Response:
    """Run a page's action with its Stripe write held, check nothing was held meanwhile, apply Stripe's events as
    the webhook would, and return the page's answer."""
    world = World(services, sandbox)
    before = len(await world.events())
    answer, seen = await while_held(services, sandbox, action, method=method, path=path, row=("subscriptions", sub_id))
    _free_with_lease(seen)
    await world.apply_all(await world.events(after=before))
    row = await _row(services, sub_id)
    assert row.stripe_turn_nonce is None and row.stripe_turn_until is None  # the turn was given back
    return answer


async def _form(client: httpx.AsyncClient, billing: Billing) -> dict[str, str]:
    return {"csrf": csrf_of((await client.get(billing.path)).text)}


def _notice(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    query = httpx.URL(answer.headers["location"]).params
    return query.get("notice") or f"error={query.get('error')}"


# ----------------------------------------------------------------------------------------------- the self-check


async def test_the_look_sees_a_transaction_held_across_a_stripe_call(services: Services, sandbox: str) -> None:
    """The shape this module forbids, on purpose: a row locked and a transaction open while Stripe answers. The
    look catches both, so the tests below can fail."""
    async with services.db.transaction() as session:
        setup = await paid_stripe_subscription(session, services.stripe, sandbox)
    stripe_id = str(setup.stripe_subscription["id"])

    async def old_shape() -> str:
        async with services.db.transaction() as session:
            await turns.lock_subscription(session, setup.subscription.id)
            data = await services.stripe.retrieve_subscription(stripe_id)
        return str(data["id"])

    got, seen = await while_held(
        services,
        sandbox,
        old_shape(),
        method="GET",
        path=f"/v1/subscriptions/{stripe_id}",
        row=("subscriptions", setup.subscription.id),
    )
    assert got == stripe_id and seen.path == f"/v1/subscriptions/{stripe_id}"
    assert len(seen.in_transaction) == 1 and "idle in transaction" in seen.in_transaction[0], seen
    assert not seen.row_lockable
    with pytest.raises(AssertionError, match="open transactions while"):
        seen.assert_free()


# ------------------------------------------------------------------------------------- self-service (the page)


async def test_upgrade_on_the_page_holds_nothing_while_stripe_answers(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    billing = await _billing(services, client, sandbox)
    bigger = await _plan(services, 49900)
    preview = await client.get(f"{billing.path}/change", params={"plan": bigger.slug})
    assert preview.status_code == 200, preview.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', preview.text))
    assert fields["plan"] == bigger.slug and fields["proration_date"] != "0", fields
    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/change", data=fields),
        method="POST",
        path=f"/v1/subscriptions/{billing.stripe_id}",
    )
    assert _notice(answer) == "upgraded"
    assert (await _row(services, billing.sub_id)).plan_id == bigger.id
    assert await _audits(services, billing.sub_id, "subscription.upgraded") == 1


async def _downgrade_form(client: httpx.AsyncClient, billing: Billing, smaller: Plan) -> dict[str, str]:
    preview = await client.get(f"{billing.path}/change", params={"plan": smaller.slug})
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', preview.text))
    assert fields.get("plan") == smaller.slug, preview.text
    return fields


async def test_downgrade_on_the_page_creates_its_schedule_holding_nothing(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    billing = await _billing(services, client, sandbox, amount=49900)
    smaller = await _plan(services, 9900)
    fields = await _downgrade_form(client, billing, smaller)
    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/change", data=fields),
        method="POST",
        path="/v1/subscription_schedules",
    )
    assert _notice(answer) == "downgrade_scheduled"
    row = await _row(services, billing.sub_id)
    assert row.pending_plan_id == smaller.id and row.stripe_schedule_id is not None
    on_stripe = await services.stripe.retrieve_subscription(billing.stripe_id)
    assert on_stripe["schedule"] == row.stripe_schedule_id


async def test_withdrawing_a_downgrade_releases_the_schedule_holding_nothing(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    billing = await _billing(services, client, sandbox, amount=49900)
    smaller = await _plan(services, 9900)
    fields = await _downgrade_form(client, billing, smaller)
    assert _notice(await client.post(f"{billing.path}/change", data=fields)) == "downgrade_scheduled"
    schedule = (await _row(services, billing.sub_id)).stripe_schedule_id
    assert schedule is not None
    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/pending/cancel", data=await _form(client, billing)),
        method="POST",
        path=f"/v1/subscription_schedules/{schedule}/release",
    )
    assert _notice(answer) == "pending_canceled"
    row = await _row(services, billing.sub_id)
    assert row.pending_plan_id is None and row.plan_id == billing.setup.plan.id
    assert (await services.stripe.retrieve_subscription_schedule(schedule))["status"] == "released"
    released = await services.stripe.list_events({"type": "subscription_schedule.released", "limit": 10})
    [event] = [e for e in released["data"] if e["data"]["object"]["id"] == schedule]
    assert event["request"]["idempotency_key"] == f"aquoris-release-{schedule}"  # a retry replays Stripe's answer


async def test_cancel_with_a_reason_then_resume_on_the_page_hold_nothing(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    billing = await _billing(services, client, sandbox)
    form = {**await _form(client, billing), "reason": "Too expensive for now"}
    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/cancel", data=form),
        method="POST",
        path=f"/v1/subscriptions/{billing.stripe_id}",
    )
    assert _notice(answer) == "cancel_scheduled"
    row = await _row(services, billing.sub_id)
    assert row.cancel_at_period_end and row.cancels_on is not None
    assert (await services.stripe.retrieve_subscription(billing.stripe_id))["cancel_at_period_end"] is True
    assert row.cancel_reason == "Too expensive for now"  # kept through the webhook

    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/resume", data=await _form(client, billing)),
        method="POST",
        path=f"/v1/subscriptions/{billing.stripe_id}",
    )
    assert _notice(answer) == "resumed"
    row = await _row(services, billing.sub_id)
    assert not row.cancel_at_period_end and row.cancels_on is None
    assert (await services.stripe.retrieve_subscription(billing.stripe_id))["cancel_at_period_end"] is False


async def test_cancel_now_of_a_past_due_plan_on_the_page_holds_nothing_and_a_paid_up_one_is_refused(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    """The page's cancel-now is for a plan whose renewal failed: refused (nothing changes) while it is paid up; past
    due, Stripe's cancellation and the void of the unpaid invoice run in a turn, with nothing held meanwhile."""
    billing = await _billing(services, client, sandbox)
    form = {**await _form(client, billing), "reason": "Card lost"}
    refused = await client.post(f"{billing.path}/cancel-now", data=form)
    assert _notice(refused) == "error=change_failed"
    assert _notice(await client.get(f"{billing.path}/cancel-now")) == "error=change_not_offered"
    assert (await _row(services, billing.sub_id)).status == "active"
    assert await _audits(services, billing.sub_id, "subscription.canceled_now") == 0

    world = World(services, sandbox)
    seen = len(await world.events())
    await world.set_card(str(billing.setup.stripe_subscription["customer"]), FAILING_CARD)
    await world.advance(31)
    await world.apply_all(await world.events(after=seen))
    assert (await _row(services, billing.sub_id)).status == "past_due"
    answer = await _held(
        services,
        sandbox,
        billing.sub_id,
        client.post(f"{billing.path}/cancel-now", data=form),
        method="DELETE",
        path=f"/v1/subscriptions/{billing.stripe_id}",
    )
    assert _notice(answer) == "canceled_now"
    row = await _row(services, billing.sub_id)
    assert (row.status, row.cancel_reason) == ("canceled", "Card lost")
    assert await _audits(services, billing.sub_id, "subscription.canceled_now") == 1
    owed = await services.stripe.list_invoices({"subscription": billing.stripe_id, "status": "void"})
    assert [inv["billing_reason"] for inv in owed["data"]] == ["subscription_cycle"]


async def test_a_second_action_while_the_lease_is_held_is_told_to_try_again_in_english_and_thai(
    services: Services, client: httpx.AsyncClient, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's cancel is parked at Stripe; a resume and a cancel sent meanwhile (English, Thai) wait out the
    (shortened) wait, are told another change is in progress, and leave no trace; afterwards both work."""
    monkeypatch.setattr(turns, "WAIT_SECONDS", 0.3)
    billing = await _billing(services, client, sandbox)
    form = await _form(client, billing)
    seen_pages: list[str] = []

    async def others() -> None:
        for lang, action in (("en", "resume"), ("th", "cancel")):
            refused = await client.post(f"{billing.path}/{action}", data={**form, "lang": lang, "reason": "second"})
            assert _notice(refused) == "error=busy"
            seen_pages.append(text_of((await client.get(refused.headers["location"])).text))

    answer, seen = await while_held(
        services,
        sandbox,
        client.post(f"{billing.path}/cancel", data={**form, "reason": "first"}),
        method="POST",
        path=f"/v1/subscriptions/{billing.stripe_id}",
        row=("subscriptions", billing.sub_id),
        meanwhile=others,
    )
    _free_with_lease(seen)
    assert _notice(answer) == "cancel_scheduled"
    assert "Another change to your plan is in progress. Wait a moment, then try again." in seen_pages[0]
    assert "มีการเปลี่ยนแพ็กเกจอื่นกำลังดำเนินการอยู่ โปรดรอสักครู่แล้วลองอีกครั้ง" in seen_pages[1]
    # the refused ones left nothing: one cancel, its reason, no resume
    assert await _adjustments(services, billing.sub_id, "cancel") == 1
    assert await _adjustments(services, billing.sub_id, "resume") == 0
    # and the user can send the resume again now
    assert _notice(await client.post(f"{billing.path}/resume", data=form)) == "resumed"
    assert not (await _row(services, billing.sub_id)).cancel_at_period_end


# ------------------------------------------------------------------------------------- admin (the admin's forms)


@pytest.fixture
async def admin(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with services.db.transaction() as session:
        if await admins.find_by_email(session, EMAIL) is None:
            await admins.create_admin(session, email=EMAIL, name="Ops", password=PASSWORD, actor="test")
    async with asgi_client(create_app(services=services)) as client:
        signed_in = await sign_in(client, EMAIL, PASSWORD)
        assert signed_in.status_code == 302, signed_in.text
        yield client


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


async def _confirmation(admin: httpx.AsyncClient, path: str, fields: dict[str, str]) -> dict[str, str]:
    """Open the admin's form, send it, and the confirmation's hidden fields (what Confirm posts)."""
    form = await admin.get(path)
    assert form.status_code == 200, form.text
    confirmation = await admin.post(path, data={**_hidden(form.text), **fields})
    assert confirmation.status_code == 200 and 'id="operation-summary"' in confirmation.text, confirmation.text
    return _hidden(confirmation.text)


async def _paid(services: Services, sandbox: str, **kwargs: object) -> StripeSetup:
    async with services.db.transaction() as session:
        return await paid_stripe_subscription(session, services.stripe, sandbox, **kwargs)  # type: ignore[arg-type]


async def test_admin_change_plan_holds_nothing_while_stripe_answers(
    admin: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    bigger = await _plan(services, 49900)
    sub_id, stripe_id = setup.subscription.id, str(setup.stripe_subscription["id"])
    path = f"/admin/operations/subscription/{sub_id}/change-plan"
    confirm = await _confirmation(admin, path, {"plan_id": str(bigger.id)})
    done = await _held(
        services, sandbox, sub_id, admin.post(path, data=confirm), method="POST", path=f"/v1/subscriptions/{stripe_id}"
    )
    assert done.status_code == 303, done.text
    assert (await _row(services, sub_id)).plan_id == bigger.id
    assert await _audits(services, sub_id, "subscription.upgraded") == 1


async def test_admin_cancel_holds_nothing_while_stripe_answers(
    admin: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    sub_id, stripe_id = setup.subscription.id, str(setup.stripe_subscription["id"])
    path = f"/admin/operations/subscription/{sub_id}/cancel"
    confirm = await _confirmation(admin, path, {"reason": "Asked by phone"})
    done = await _held(
        services, sandbox, sub_id, admin.post(path, data=confirm), method="POST", path=f"/v1/subscriptions/{stripe_id}"
    )
    assert done.status_code == 303, done.text
    row = await _row(services, sub_id)
    assert row.cancel_at_period_end and row.cancels_on is not None
    assert (await services.stripe.retrieve_subscription(stripe_id))["cancel_at_period_end"] is True
    assert await _adjustments(services, sub_id, "cancel") == 1


async def test_an_admin_action_refused_by_the_lease_gives_its_nonce_back(
    admin: httpx.AsyncClient, services: Services, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a customer's upgrade is parked at Stripe, the admin's confirmed Cancel is refused with the busy
    message and claims nothing: the very same confirmation, sent again afterwards, cancels (not "Already done")."""
    monkeypatch.setattr(turns, "WAIT_SECONDS", 0.3)
    setup = await _paid(services, sandbox)
    bigger = await _plan(services, 49900)
    sub_id, stripe_id = setup.subscription.id, str(setup.stripe_subscription["id"])
    path = f"/admin/operations/subscription/{sub_id}/cancel"
    confirm = await _confirmation(admin, path, {"reason": "Asked by phone"})
    refusals: list[httpx.Response] = []

    async def admin_cancels() -> None:
        refusals.append(await admin.post(path, data=confirm))

    upgrade = changes.change_plan(
        services.db,
        services.stripe,
        sub_id,
        app=None,
        plan_slug=bigger.slug,
        proration_date=None,
        actor=f"customer:{setup.customer.id}",
    )
    outcome, seen = await while_held(
        services,
        sandbox,
        upgrade,
        method="POST",
        path=f"/v1/subscriptions/{stripe_id}",
        row=("subscriptions", sub_id),
        meanwhile=admin_cancels,
    )
    _free_with_lease(seen)
    assert outcome.subscription.plan_id == bigger.id
    (refused,) = refusals
    assert refused.status_code == 422, refused.text
    assert turns.BUSY in refused.text
    assert await _adjustments(services, sub_id, "cancel") == 0

    again = await admin.post(path, data=confirm)
    assert again.status_code == 303, again.text
    followed = await admin.get(again.headers["location"])
    assert "Already done" not in followed.text
    assert "will cancel at period end" in followed.text
    assert (await _row(services, sub_id)).cancel_at_period_end
    assert await _adjustments(services, sub_id, "cancel") == 1


# ---------------------------------------------------------------------------- turns: concurrency and failures


async def test_two_cancels_at_once_act_once(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    sub_id = setup.subscription.id

    def cancel() -> Awaitable[Subscription]:
        return subscriptions.cancel_at_period_end(services.db, sub_id, gateway=services.stripe, actor=ACTOR)

    # the first cancel is parked at Stripe while the second starts: it waits for the turn, then sees the result
    second: list[asyncio.Future[Subscription]] = []

    async def start_second() -> None:
        second.append(asyncio.ensure_future(cancel()))

    first, seen = await while_held(
        services,
        sandbox,
        cancel(),
        method="POST",
        path=f"/v1/subscriptions/{setup.stripe_subscription['id']}",
        row=("subscriptions", sub_id),
        meanwhile=start_second,
    )
    _free_with_lease(seen)
    results = [first, *(await asyncio.gather(*second, return_exceptions=True))]
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


# ------------------------------------------------------------------- the other actions, at the service level


async def _service_held(
    services: Services, sandbox: str, sub_id: int, action: Awaitable[T], *, method: str, path: str
) -> T:
    result, seen = await while_held(services, sandbox, action, method=method, path=path, row=("subscriptions", sub_id))
    seen.assert_free()
    return result


async def test_preview_extend_and_cancel_now_hold_nothing_while_stripe_answers(
    services: Services, sandbox: str
) -> None:
    setup = await _paid(services, sandbox)
    bigger = await _plan(services, 49900)
    sub_id, stripe_id = setup.subscription.id, str(setup.stripe_subscription["id"])
    db, gateway = services.db, services.stripe

    preview = changes.preview_change(db, gateway, sub_id, app=None, plan_slug=bigger.slug, actor=ACTOR)
    shown = await _service_held(services, sandbox, sub_id, preview, method="POST", path="/v1/invoices/create_preview")
    assert shown.kind == changes.UPGRADE and shown.amount_due_now > 0

    before = (await _row(services, sub_id)).current_period_end
    assert before is not None
    extend = subscriptions.extend(db, sub_id, days=10, reason="Outage", gateway=gateway, actor=ACTOR)
    sub = await _service_held(services, sandbox, sub_id, extend, method="POST", path=f"/v1/subscriptions/{stripe_id}")
    assert sub.current_period_end == before + timedelta(days=10) and sub.status == "active"

    cancel_now = subscriptions.cancel_now(db, sub_id, gateway=gateway, actor=ACTOR)
    sub = await _service_held(
        services, sandbox, sub_id, cancel_now, method="DELETE", path=f"/v1/subscriptions/{stripe_id}"
    )
    assert sub.status == "canceled" and (await gateway.retrieve_subscription(stripe_id))["status"] == "canceled"
    for kind in ("extend", "cancel_now"):
        assert await _adjustments(services, sub_id, kind) == 1, kind


async def test_a_grant_replacing_a_stripe_subscription_holds_nothing(services: Services, sandbox: str) -> None:
    setup = await _paid(services, sandbox)
    stripe_id = str(setup.stripe_subscription["id"])
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
    granted = await _service_held(
        services, sandbox, setup.subscription.id, grant, method="DELETE", path=f"/v1/subscriptions/{stripe_id}"
    )
    assert granted.source == "grant" and granted.status == "active"
    assert (await _row(services, setup.subscription.id)).status == "canceled"
    assert (await services.stripe.retrieve_subscription(stripe_id))["status"] == "canceled"


# ------------------------------------------------------------------------ Subscribe (the pricing page, checkout.py)


@dataclass(frozen=True)
class Pricing:
    """A user's billing page with no subscription yet (its path, CSRF token and customer) and two paid plans."""

    path: str
    csrf: str
    customer_id: int
    plans: tuple[Plan, Plan]


async def _pricing(services: Services, client: httpx.AsyncClient) -> Pricing:
    async with services.db.transaction() as session:
        app, key = await factories.create_app(session)
    user = f"tx-buyer-{next(_n)}"
    opened = await client.post(
        "/api/v1/sessions",
        json={"externalUserId": user, "appSlug": app.slug, "email": f"{user}@example.com"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert opened.status_code == 201, opened.text
    async with services.db.session() as session:
        customer = await get_by_external_id(session, user)
        assert customer is not None
    path = httpx.URL(opened.json()["url"]).path
    plans = (await _plan(services, 29900), await _plan(services, 49900))
    return Pricing(path, csrf_of((await client.get(path)).text), customer.id, plans)


def _subscribe(client: httpx.AsyncClient, pricing: Pricing, plan: Plan, lang: str = "en") -> Awaitable[httpx.Response]:
    return client.post(f"{pricing.path}/subscribe", data={"plan": plan.slug, "csrf": pricing.csrf, "lang": lang})


async def _customer(services: Services, customer_id: int) -> Customer:
    async with services.db.session() as session:
        row = await session.get(Customer, customer_id)
        assert row is not None
        return row


async def _payable(services: Services, customer_id: int) -> list[str]:
    """The customer's checkout sessions Stripe would still take a payment for."""
    customer = await _customer(services, customer_id)
    assert customer.stripe_customer_id is not None
    found = await services.stripe.list_checkout_sessions(
        {"customer": customer.stripe_customer_id, "status": "open", "limit": 100}
    )
    return [str(c["id"]) for c in found["data"]]


async def _recorded(services: Services, customer_id: int) -> list[CheckoutSession]:
    async with services.db.session() as session:
        query = select(CheckoutSession).where(CheckoutSession.customer_id == customer_id).order_by(CheckoutSession.id)
        return list((await session.execute(query)).scalars())


async def _held_subscribe(
    services: Services,
    client: httpx.AsyncClient,
    sandbox: str,
    pricing: Pricing,
    *,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> tuple[httpx.Response, Seen]:
    """Subscribe to the first plan with its Checkout Session creation parked at Stripe; nothing may be held."""
    answer, seen = await while_held(
        services,
        sandbox,
        _subscribe(client, pricing, pricing.plans[0]),
        method="POST",
        path="/v1/checkout/sessions",
        row=("customers", pricing.customer_id),
        meanwhile=meanwhile,
    )
    seen.assert_free()
    return answer, seen


async def test_subscribe_on_the_pricing_page_holds_nothing_while_stripe_answers(
    services: Services, client: httpx.AsyncClient, sandbox: str
) -> None:
    """Creating the Checkout Session is parked at Stripe: no transaction is open and the customer row can be locked
    at once (it carries Subscribe's turn instead); then the page still redirects to the Checkout."""
    pricing = await _pricing(services, client)
    answer, seen = await _held_subscribe(services, client, sandbox, pricing)
    assert seen.path == "/v1/checkout/sessions"
    assert seen.row is not None and seen.row["checkout_turn_nonce"] is not None, seen
    assert answer.status_code == 303, answer.text
    (row,) = await _recorded(services, pricing.customer_id)
    assert answer.headers["location"] == row.url and row.url.startswith(f"{sandbox}/c/pay/cs_")
    assert row.status == "open" and row.plan_id == pricing.plans[0].id
    customer = await _customer(services, pricing.customer_id)
    assert customer.checkout_turn_nonce is None and customer.checkout_turn_until is None  # the turn was given back
    assert await _payable(services, pricing.customer_id) == [row.stripe_checkout_session_id]


async def test_a_second_subscribe_for_another_plan_waits_for_the_first_and_replaces_its_checkout(
    services: Services, client: httpx.AsyncClient, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tabs: the first Subscribe is parked at Stripe when the second (another plan) starts. The second meets the
    turn, waits for it, then expires the first's checkout and opens its own: one payable checkout at Stripe."""
    pricing = await _pricing(services, client)
    met_the_turn = asyncio.Event()
    take_turn = checkout._take_turn

    async def watched(*args: Any, **kwargs: Any) -> Any:
        taken = await take_turn(*args, **kwargs)
        if taken is None:
            met_the_turn.set()
        return taken

    monkeypatch.setattr(checkout, "_take_turn", watched)
    second: list[asyncio.Future[httpx.Response]] = []

    async def second_tab() -> None:
        second.append(asyncio.ensure_future(_subscribe(client, pricing, pricing.plans[1])))
        await asyncio.wait_for(met_the_turn.wait(), timeout=30)

    first, _ = await _held_subscribe(services, client, sandbox, pricing, meanwhile=second_tab)
    later = await second[0]
    assert first.status_code == 303 and later.status_code == 303, (first.text, later.text)
    one, two = await _recorded(services, pricing.customer_id)
    assert (one.plan_id, one.status) == (pricing.plans[0].id, "expired")
    assert (two.plan_id, two.status) == (pricing.plans[1].id, "open")
    assert first.headers["location"] == one.url and later.headers["location"] == two.url
    assert await _payable(services, pricing.customer_id) == [two.stripe_checkout_session_id]


async def test_a_subscribe_meeting_the_turn_too_long_is_told_to_try_again_in_english_and_thai(
    services: Services, client: httpx.AsyncClient, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a (shortened) wait, Subscribes sent while the first is parked are refused with the busy message and
    leave nothing; the first's checkout is the only payable one, and a later Subscribe works."""
    monkeypatch.setattr(checkout, "WAIT_SECONDS", 0.3)
    pricing = await _pricing(services, client)
    pages: list[str] = []

    async def others() -> None:
        for lang in ("en", "th"):
            refused = await _subscribe(client, pricing, pricing.plans[1], lang)
            assert _notice(refused) == "error=checkout_busy"
            pages.append(text_of((await client.get(refused.headers["location"])).text))

    answer, _ = await _held_subscribe(services, client, sandbox, pricing, meanwhile=others)
    assert answer.status_code == 303, answer.text
    assert "Your checkout is being prepared in another tab or window. Wait a moment, then try again." in pages[0]
    assert "กำลังเตรียมการชำระเงินของคุณในแท็บหรือหน้าต่างอื่น โปรดรอสักครู่แล้วลองอีกครั้ง" in pages[1]
    (row,) = await _recorded(services, pricing.customer_id)
    assert await _payable(services, pricing.customer_id) == [row.stripe_checkout_session_id]
    # afterwards the other plan can be bought: the first's checkout is replaced
    again = await _subscribe(client, pricing, pricing.plans[1])
    assert again.status_code == 303, again.text
    first, second = await _recorded(services, pricing.customer_id)
    assert first.status == "expired" and again.headers["location"] == second.url
    assert await _payable(services, pricing.customer_id) == [second.stripe_checkout_session_id]


@pytest.mark.parametrize("retried", ["same plan", "same plan in Thai", "other plan"])
async def test_a_subscribe_that_died_mid_call_loses_nothing(
    services: Services, client: httpx.AsyncClient, sandbox: str, retried: str
) -> None:
    """A Subscribe whose holder died after Stripe created its checkout (the turn marked, nothing recorded): once the
    lease has expired, the next Subscribe takes the turn over. For the same plan Stripe answers the same checkout
    (same idempotency key); for another plan, or the same one asked in another language (other parameters: Stripe
    would refuse the same key), the unrecorded one is expired at Stripe. Either way one is payable."""
    pricing = await _pricing(services, client)
    made = await _subscribe(client, pricing, pricing.plans[0])
    assert made.status_code == 303, made.text
    (lost,) = await _recorded(services, pricing.customer_id)
    async with services.db.transaction() as session:
        # as if it had never been recorded, and its holder's lease had run out
        await session.execute(delete(CheckoutSession).where(CheckoutSession.id == lost.id))
        await session.execute(
            update(Customer)
            .where(Customer.id == pricing.customer_id)
            .values(checkout_turn_nonce="died", checkout_turn_until=utcnow() - timedelta(seconds=1))
        )
    plan = pricing.plans[1] if retried == "other plan" else pricing.plans[0]
    retry = await _subscribe(client, pricing, plan, lang="th" if retried.endswith("Thai") else "en")
    assert retry.status_code == 303, retry.text
    (row,) = await _recorded(services, pricing.customer_id)
    assert row.plan_id == plan.id and retry.headers["location"] == row.url
    assert (row.stripe_checkout_session_id == lost.stripe_checkout_session_id) is (retried == "same plan")
    made_in = await services.stripe.retrieve_checkout_session(row.stripe_checkout_session_id)
    assert made_in["locale"] == ("th" if retried.endswith("Thai") else "en")
    assert await _payable(services, pricing.customer_id) == [row.stripe_checkout_session_id]
    assert (await _customer(services, pricing.customer_id)).checkout_turn_nonce is None
