"""Events that can never apply end as failed at once with the reason, instead of retrying for half an hour; a signed
body that is not an event is told so, not blamed on the signature."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from payment.config import DEV_STRIPE_WEBHOOK_SECRET
from payment.jobs import stripe_events
from payment.models import AuditLog, StripeEvent
from payment.stripe import events as stripe_event_rules
from payment.stripe.version import API_VERSION
from tests.support.stripe import World, event_body, sign

URL = "/api/v1/webhooks/stripe"


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(
        URL,
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, DEV_STRIPE_WEBHOOK_SECRET)},
    )


async def test_a_signed_body_that_is_not_an_event_is_not_a_stripe_event(client: httpx.AsyncClient) -> None:
    for body in (b"[1, 2, 3]", b'"evt_1"', b"not json at all", json.dumps({"id": "evt_x"}).encode()):
        response = await _post(client, body)
        assert response.status_code == 400, body
        assert response.json()["detail"] == "Not a Stripe event.", body
        assert response.json()["code"] == "not_an_event", body
    unsigned = await client.post(URL, content=b"[1]", headers={"Stripe-Signature": "t=1,v1=00"})
    assert unsigned.json()["detail"] == "Invalid or expired Stripe signature."
    assert unsigned.json()["code"] == "invalid_signature"


async def _store_and_apply(world: World, event_type: str, obj: dict[str, object] | None) -> StripeEvent:
    event = json.loads(event_body(event_type, obj or {}))
    if obj is None:
        event["data"] = {}
    stored = await _stored(world, event)
    with pytest.raises(stripe_event_rules.NeverApplies):  # the job fails without a retry (and reaches Sentry)
        await stripe_events.process_event(world.services, stored)
    async with world.services.db.session() as session:
        row = await session.get(StripeEvent, stored)
        assert row is not None
        return row


async def _stored(world: World, event: dict[str, object]) -> int:
    from payment.stripe.inbox import store_event

    async with world.services.db.transaction() as session:
        return (await store_event(session, event)).id


async def test_events_that_can_never_apply_fail_at_once_with_the_reason(world: World) -> None:
    empty = await _store_and_apply(world, "invoice.paid", None)
    assert (empty.status, empty.attempts) == ("failed", 1)
    assert (
        empty.last_error == "This invoice.paid event can never apply: The event has no data.object "
        "(expected 'invoice')."
    )
    wrong = await _store_and_apply(world, "charge.refunded", {"id": "in_1", "object": "invoice"})
    assert wrong.status == "failed" and wrong.last_error is not None
    assert "is 'invoice' where 'charge' was expected" in wrong.last_error
    assert wrong.api_version == API_VERSION
    async with world.services.db.session() as session:
        audited = (
            await session.scalars(
                select(AuditLog.details["error"].astext).where(
                    AuditLog.action == "stripe_event.failed", AuditLog.entity_id == str(wrong.id)
                )
            )
        ).all()
    assert list(audited) == [wrong.last_error]


async def test_an_object_stripe_does_not_have_fails_after_a_few_attempts(world: World) -> None:
    event = json.loads(
        event_body(
            "customer.subscription.updated", {"id": "sub_never_existed", "object": "subscription", "customer": None}
        )
    )
    row_id = await _stored(world, event)
    outcomes: list[str] = []
    for _ in range(stripe_event_rules.NOT_FOUND_ATTEMPTS):
        try:
            await stripe_events.process_event(world.services, row_id)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    # the job retries a StripeError; NeverApplies is final
    assert outcomes == ["StripeError"] * (stripe_event_rules.NOT_FOUND_ATTEMPTS - 1) + ["NeverApplies"]
    async with world.services.db.session() as session:
        row = await session.get(StripeEvent, row_id)
    assert row is not None and row.status == "failed"
    assert row.last_error == (
        "This customer.subscription.updated event can never apply: Stripe has no subscription "
        f"sub_never_existed (answered 'no such object' {stripe_event_rules.NOT_FOUND_ATTEMPTS} "
        "times)."
    )
