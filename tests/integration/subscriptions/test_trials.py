"""Trials through the billing page, Stripe Checkout (the sandbox), its webhooks and its clock: offered once per
customer per app, refused after Checkout for a card that already had one, converting with a card, ending without
one, and the entitlement and notices that follow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from payment.billing.customers import get_by_external_id
from payment.models import Customer, OutboxMessage, Plan, TrialGrant
from payment.runtime import Services
from payment.subscriptions import trials
from tests.integration.billing_ui.helpers import Scene, build_scene, csrf_of, open_billing, text_of
from tests.support.app import ThreadServer
from tests.support.stripe import GOOD_CARD, World, reset_sandbox

DAY = 86400


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    scene = await build_scene(services)
    async with services.db.transaction() as session:
        await session.execute(update(Plan).where(Plan.id == scene.pro.id).values(trial_days=14))
    yield scene


@pytest.fixture
def world(services: Services, sandbox_server: ThreadServer, scene: Scene) -> World:
    # not the `sandbox` fixture: it resets Stripe's state, and the scene's prices live there for the module
    return World(services, sandbox_server.url)


class Flow:
    """One user's way through the billing page to a paid Checkout, with the webhooks applied as they come."""

    def __init__(self, client: httpx.AsyncClient, scene: Scene, world: World) -> None:
        self.client, self.scene, self.world = client, scene, world
        self.seen = 0

    async def catch_up(self) -> None:
        events = await self.world.events(after=self.seen)
        self.seen += len(events)
        await self.world.apply_all(events)

    async def checkout(self, user: str, *, plan: str = "pro") -> tuple[str, dict[str, Any]]:
        path, _ = await open_billing(self.client, self.scene, user)
        page = await self.client.get(path)
        response = await self.client.post(
            f"{path}/subscribe", data={"plan": plan, "csrf": csrf_of(page.text), "lang": "en"}
        )
        assert response.status_code == 303, response.text
        session_id = response.headers["location"].rsplit("/", 1)[-1]
        stripe_session = await self.world.services.stripe.retrieve_checkout_session(session_id)
        return path, stripe_session

    async def pay(self, session_id: str, card: str = GOOD_CARD) -> dict[str, Any]:
        paid = await self.world.control("POST", f"checkout_sessions/{session_id}/pay", data={"card": card})
        await self.catch_up()
        return dict(paid["subscription"])

    async def entitlement(self, user: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/customers/{user}/subscription", headers={"Authorization": f"Bearer {self.scene.api_key}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def _customer(services: Services, user: str) -> Customer:
    async with services.db.session() as session:
        found = await get_by_external_id(session, user)
    assert found is not None
    return found


async def _grants(services: Services, customer: Customer) -> list[TrialGrant]:
    async with services.db.session() as session:
        rows = await session.scalars(select(TrialGrant).where(TrialGrant.customer_id == customer.id))
        return list(rows)


async def test_a_trial_converts_and_a_second_one_is_refused_to_the_customer_and_to_the_card(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    flow = Flow(client, scene, world)
    flow.seen = len(await world.events())
    path, _ = await open_billing(client, scene, "trial-ann", email="ann@example.com")
    assert "14-day free trial" in text_of((await client.get(path)).text)

    path, checkout = await flow.checkout("trial-ann")
    assert checkout["amount_total"] == 0  # the trial: nothing due today
    sub = await flow.pay(str(checkout["id"]))
    body = await flow.entitlement("trial-ann")
    assert body["status"] == "trialing" and body["plan"]["slug"] == "pro" and body["paid"] is True
    assert body["trialEndsAt"] is not None and body["trialEndsAt"].endswith("Z")
    ann = await _customer(services, "trial-ann")
    [grant] = await _grants(services, ann)
    assert grant.refused_reason is None and grant.card_fingerprint

    # three days before the end Stripe says so; the end user's trial-ending notice is queued
    await world.advance(11.01)
    await flow.catch_up()
    async with services.db.session() as session:
        notices = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.target == f"customer:{ann.id}"))
        ).all()
    # the trial's first invoice charged nothing, so no receipt was queued for it
    assert [(n.event_type, n.payload["to"]) for n in notices] == [("trial_ending", "ann@example.com")]

    # the trial ends: the card is charged the plan's price and the subscription is active
    await world.advance(3.01)
    await flow.catch_up()
    body = await flow.entitlement("trial-ann")
    assert body["status"] == "active" and body["trialEndsAt"] is None
    invoices = await world.invoices(ann)
    assert [(i.amount_cents, i.status) for i in invoices] == [(0, "paid"), (29900, "paid")]
    async with services.db.session() as session:
        receipts = (
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.target == f"customer:{ann.id}", OutboxMessage.event_type == "receipt"
                )
            )
        ).all()
    assert [r.payload["data"]["amountCents"] for r in receipts] == [29900]  # the first charge's, only

    # the same customer again, after canceling: no second trial, and the page says why
    await services.stripe.cancel_subscription(str(sub["id"]))
    await flow.catch_up()
    assert "No free trial: you have already had one in Vega." in text_of((await client.get(path)).text)
    _, again = await flow.checkout("trial-ann")
    assert again["amount_total"] == 29900

    # another account, the same card: the trial is granted by Checkout, refused once the card is known, and ended
    _, bob_checkout = await flow.checkout("trial-bob")
    assert bob_checkout["amount_total"] == 0
    await flow.pay(str(bob_checkout["id"]))
    bob = await _customer(services, "trial-bob")
    [bob_grant] = await _grants(services, bob)
    assert bob_grant.refused_reason == trials.CARD_HAD_TRIAL
    assert await trials.end_refused(services.db, services.stripe) == 1
    assert await trials.end_refused(services.db, services.stripe) == 0  # once
    await flow.catch_up()
    body = await flow.entitlement("trial-bob")
    assert body["status"] == "active" and body["trialEndsAt"] is None
    assert [(i.amount_cents, i.status) for i in await world.invoices(bob)][-1] == (29900, "paid")
    bob_path, _ = await open_billing(client, scene, "trial-bob")
    assert "this card has already had a free trial in Vega" in text_of((await client.get(bob_path)).text)

    # a third account with another card still gets its trial
    _, cara_checkout = await flow.checkout("trial-cara")
    await flow.pay(str(cara_checkout["id"]), card="5555555555554444")
    assert (await flow.entitlement("trial-cara"))["status"] == "trialing"


@pytest.mark.parametrize(("behavior", "stripe_status"), [("cancel", "canceled"), ("pause", "paused")])
async def test_a_trial_without_a_card_ends_as_the_plan_says(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services, behavior: str, stripe_status: str
) -> None:
    async with services.db.transaction() as session:
        await session.execute(
            update(Plan)
            .where(Plan.id == scene.yearly_usd.id)
            .values(trial_days=7, trial_requires_card=False, trial_end_behavior=behavior)
        )
    flow = Flow(client, scene, world)
    flow.seen = len(await world.events())
    user = f"cardless-{behavior}"
    path, _ = await open_billing(client, scene, user)
    assert "7-day free trial, no card needed" in text_of((await client.get(path)).text)
    _, checkout = await flow.checkout(user, plan="vega-team")
    assert checkout["payment_method_collection"] == "if_required"
    sub = await flow.pay(str(checkout["id"]), card="none")
    assert sub["default_payment_method"] is None
    assert (await flow.entitlement(user))["status"] == "trialing"
    await world.advance(7.01)
    await flow.catch_up()
    body = await flow.entitlement(user)
    assert body["status"] == "free" and body["paid"] is False
    row = await world.subscription(str(sub["id"]))
    assert row is not None and row.status == stripe_status
