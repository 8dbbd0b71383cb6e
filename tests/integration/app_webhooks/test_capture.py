"""Which changes become events: the API, admin actions and jobs all go through the same capture."""

from __future__ import annotations

import httpx

from payment.admins.permissions import AdminActor
from payment.runtime import Services
from payment.subscriptions import service as subscriptions
from tests.integration.app_webhooks.conftest import client_app, messages
from tests.support import factories
from tests.support.db import in_db


async def test_a_new_email_through_the_client_api_is_one_customer_updated_event(
    services: Services, client: httpx.AsyncClient
) -> None:
    vega = await client_app(services, "http://127.0.0.1:9/hooks", event_types=("customer.updated",))
    headers = {"Authorization": f"Bearer {vega.api_key}"}
    body = {"externalUserId": "capture-user-1", "appSlug": vega.app.slug, "email": "ann@example.com"}
    for email in ("ann@example.com", "ann@example.com", "ann.b@example.com"):  # created, unchanged, changed
        response = await client.post("/api/v1/sessions", json={**body, "email": email}, headers=headers)
        assert response.status_code == 201, response.text
    rows = await messages(services, vega.endpoint.id)
    assert [(r.event_type, r.payload["data"]["email"]) for r in rows] == [("customer.updated", "ann.b@example.com")]


async def test_a_granted_subscription_is_created_and_changes_the_entitlement_of_the_apps_it_counts_for(
    services: Services,
) -> None:
    vega = await client_app(services, "http://127.0.0.1:9/hooks")
    other = await client_app(services, "http://127.0.0.1:9/other")
    async with services.db.transaction() as session:
        plan = await factories.create_plan(session, app_id=vega.app.id)  # scoped to Vega only
        customer = await factories.create_customer(session)
    async with services.db.transaction() as session:
        await subscriptions.grant(
            in_db(session),
            customer.id,
            plan_id=plan.id,
            days=30,
            reason="Partner account",
            gateway=services.stripe,
            actor=AdminActor(1, "owner"),
        )
    got = [(r.event_type, r.payload["data"]["status"]) for r in await messages(services, vega.endpoint.id)]
    assert got == [("subscription.created", "active"), ("entitlement.changed", "active")]
    assert await messages(services, other.endpoint.id) == []  # another app's plan: nothing for it
