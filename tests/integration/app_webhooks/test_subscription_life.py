"""End to end: a subscription's whole life in the sandbox reaches a client app's endpoint on loopback as exactly
the expected events, in order, each verifiable with the standardwebhooks library, delivered by a real worker."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest

from payment.api import openapi
from payment.config import Settings
from payment.runtime import Services
from tests.integration.app_webhooks.conftest import client_app, messages
from tests.integration.app_webhooks.receiver import webhook_receiver
from tests.integration.jobs.conftest import running_worker
from tests.support.stripe import FAILING_CARD, GOOD_CARD, World

pytestmark = pytest.mark.slow


async def _apply_new(world: World, seen: int) -> int:
    events = await world.events(after=seen)
    await world.apply_all(events)
    return seen + len(events)


async def test_a_subscription_life_produces_the_expected_events_in_order(
    world: World, services: Services, settings: Settings, client: httpx.AsyncClient
) -> None:
    with webhook_receiver() as receiver:
        vega = await client_app(services, receiver.url)
        plan = await world.plan(amount=29900)
        customer = await world.customer()

        checkout = await world.subscribe(customer, plan)  # subscribe
        seen = await _apply_new(world, 0)
        await world.set_card(checkout["customer"], FAILING_CARD)
        await world.advance(31)  # the renewal fails
        seen = await _apply_new(world, seen)
        await world.set_card(checkout["customer"], GOOD_CARD)
        await world.advance(4)  # Stripe's retry succeeds: recovered
        seen = await _apply_new(world, seen)
        first = (await world.invoices(customer))[0]
        await world.services.stripe.create_refund({"charge": first.stripe_charge_id, "amount": 9900})
        seen = await _apply_new(world, seen)  # a partial refund
        await world.services.stripe.update_subscription(checkout["subscription"], {"cancel_at_period_end": True})
        seen = await _apply_new(world, seen)  # cancel at period end
        await world.advance(31)  # the period ends
        seen = await _apply_new(world, seen)

        queued = await messages(services, vega.endpoint.id)
        async with running_worker(settings):
            accepted = await receiver.wait_accepted(len(queued))

    bodies: list[dict[str, Any]] = [d.verified(vega.secret) for d in accepted]
    summary = [(b["type"], b["data"].get("status")) for b in bodies]
    assert summary == [
        ("subscription.created", "active"),  # checkout completed
        ("entitlement.changed", "active"),
        ("invoice.paid", "paid"),
        ("subscription.updated", "past_due"),  # the renewal failed
        ("entitlement.changed", "past_due"),
        ("invoice.payment_failed", "payment_failed"),
        ("subscription.updated", "active"),  # the retry paid: a new period
        ("invoice.paid", "paid"),
        ("entitlement.changed", "active"),
        ("refund.succeeded", None),
        ("subscription.updated", "active"),  # set to cancel at period end
        ("entitlement.changed", "active"),
        ("subscription.canceled", "canceled"),  # the period ended
        ("entitlement.changed", "free"),
    ]
    document = openapi.document(settings)
    for body in bodies:  # each body matches its schema in the OpenAPI document's `webhooks`
        schema = document["webhooks"][body["type"]]["post"]["requestBody"]["content"]["application/json"]["schema"]
        jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]}).validate(body)
    assert len({d.id for d in accepted}) == len(accepted) == len(queued)
    assert [d.id for d in accepted] == [m.message_id for m in queued]
    sequences = [b["sequence"] for b in bodies if b["subscriptionId"] is not None]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    refund = next(b for b in bodies if b["type"] == "refund.succeeded")
    assert (refund["data"]["amount"], refund["data"]["currency"]) == (9900, "thb")
    assert (bodies[-1]["data"]["status"], bodies[-1]["data"]["paid"]) == ("free", False)
    api = await client.get(
        f"/api/v1/customers/{customer.external_user_id}/subscription",
        headers={"Authorization": f"Bearer {vega.api_key}"},
    )
    assert api.json() == bodies[-1]["data"]  # the same body as the entitlement API
    assert bodies[-2]["data"]["endedAt"] is not None
