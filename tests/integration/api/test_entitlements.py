"""GET /api/v1/customers/{externalUserId}/subscription: what a client app unlocks for a user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest

from payment.models import App, Customer, Plan, utcnow
from payment.runtime import Services
from tests.integration.api.schema import conforms
from tests.support import factories


@dataclass(frozen=True)
class World:
    vega: App
    key: str
    other_key: str
    free: Plan
    pro: Plan
    vega_only: Plan
    orion_only: Plan


@pytest.fixture(scope="module")
async def world(services: Services) -> AsyncIterator[World]:
    async with services.db.transaction() as session:
        vega, key = await factories.create_app(session, slug="vega", name="Vega")
        orion, other_key = await factories.create_app(session, slug="orion", name="Orion")
        free = await factories.create_plan(session, slug="free", name="Aquoris Free", price_cents=0)
        pro = await factories.create_plan(session, slug="pro", name="Aquoris PRO", price_cents=29900)
        vega_only = await factories.create_plan(
            session, slug="vega-max", name="Vega Max", price_cents=99900, app_id=vega.id
        )
        orion_only = await factories.create_plan(
            session, slug="orion-max", name="Orion Max", price_cents=99900, app_id=orion.id
        )
    yield World(vega, key, other_key, free, pro, vega_only, orion_only)


async def new_customer(services: Services, external_id: str) -> Customer:
    async with services.db.transaction() as session:
        return await factories.create_customer(session, external_user_id=external_id)


async def entitlement(client: httpx.AsyncClient, key: str, external_id: str) -> dict[str, object]:
    response = await client.get(
        f"/api/v1/customers/{quote(external_id, safe='')}/subscription", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return await conforms(client, response, "Entitlement")


async def test_unknown_user_gets_the_free_plan(client: httpx.AsyncClient, world: World) -> None:
    body = await entitlement(client, world.key, "never-seen")
    assert body == {
        "externalUserId": "never-seen",
        "appSlug": "vega",
        "plan": {"slug": "free", "name": "Aquoris Free"},
        "status": "free",
        "source": "free",
        "paid": False,
        "currentPeriodEnd": None,
        "cancelAtPeriodEnd": False,
        "cancelsAt": None,
        "cancelAt": None,
        "pendingChange": None,
        "accessState": "full",
        "graceEndsAt": None,
        "trialEndsAt": None,
    }


async def test_active_stripe_subscription_unlocks_the_plan(
    client: httpx.AsyncClient, world: World, services: Services
) -> None:
    cust = await new_customer(services, "paying/user@example.com")
    async with services.db.transaction() as session:
        sub = await factories.create_subscription(session, cust, world.pro, cancel_at_period_end=True)
    body = await entitlement(client, world.key, "paying/user@example.com")
    assert body["plan"] == {"slug": "pro", "name": "Aquoris PRO"}
    assert (body["status"], body["source"], body["paid"], body["cancelAtPeriodEnd"]) == ("active", "stripe", True, True)
    assert sub.current_period_end is not None
    assert body["currentPeriodEnd"] == sub.current_period_end.isoformat().replace("+00:00", "Z")
    assert body["cancelsAt"] == body["currentPeriodEnd"]


async def test_past_due_keeps_access_and_says_so(client: httpx.AsyncClient, world: World, services: Services) -> None:
    cust = await new_customer(services, "late-payer")
    async with services.db.transaction() as session:
        await factories.create_subscription(session, cust, world.pro, status="past_due")
    body = await entitlement(client, world.key, "late-payer")
    assert (body["plan"], body["status"], body["paid"]) == ({"slug": "pro", "name": "Aquoris PRO"}, "past_due", True)


@pytest.mark.parametrize("status", ["canceled", "incomplete", "incomplete_expired", "unpaid", "expired"])
async def test_ended_or_unpaid_subscriptions_fall_back_to_free(
    client: httpx.AsyncClient, world: World, services: Services, status: str
) -> None:
    cust = await new_customer(services, f"ended-{status}")
    async with services.db.transaction() as session:
        await factories.create_subscription(session, cust, world.pro, status=status)
    body = await entitlement(client, world.key, f"ended-{status}")
    assert (body["plan"], body["status"], body["paid"]) == ({"slug": "free", "name": "Aquoris Free"}, "free", False)


async def test_manual_subscription_past_its_end_no_longer_counts(
    client: httpx.AsyncClient, world: World, services: Services
) -> None:
    cust = await new_customer(services, "manual-lapsed")
    async with services.db.transaction() as session:
        await factories.create_subscription(
            session, cust, world.pro, source="manual", start=utcnow() - timedelta(days=40), days=30
        )
    assert (await entitlement(client, world.key, "manual-lapsed"))["status"] == "free"
    cust = await new_customer(services, "granted")
    async with services.db.transaction() as session:
        await factories.create_subscription(session, cust, world.pro, source="grant", days=14)
    body = await entitlement(client, world.key, "granted")
    assert (body["plan"], body["source"]) == ({"slug": "pro", "name": "Aquoris PRO"}, "grant")


async def test_app_scoped_plans_count_only_in_their_app(
    client: httpx.AsyncClient, world: World, services: Services
) -> None:
    cust = await new_customer(services, "orion-subscriber")
    async with services.db.transaction() as session:
        await factories.create_subscription(session, cust, world.orion_only)
    assert (await entitlement(client, world.key, "orion-subscriber"))["status"] == "free"
    orion = await entitlement(client, world.other_key, "orion-subscriber")
    assert (orion["appSlug"], orion["plan"]) == ("orion", {"slug": "orion-max", "name": "Orion Max"})


async def test_the_better_of_two_live_subscriptions_wins(
    client: httpx.AsyncClient, world: World, services: Services
) -> None:
    cust = await new_customer(services, "two-subs")
    async with services.db.transaction() as session:
        await factories.create_subscription(session, cust, world.pro, source="grant")
        await factories.create_subscription(session, cust, world.vega_only, status="past_due")
    body = await entitlement(client, world.key, "two-subs")
    assert (body["plan"], body["status"]) == ({"slug": "pro", "name": "Aquoris PRO"}, "active")


async def test_entitlement_needs_a_valid_key(client: httpx.AsyncClient, world: World) -> None:
    missing = await client.get("/api/v1/customers/u/subscription")
    assert missing.status_code == 401 and missing.json()["code"] == "missing_api_key"
    await conforms(client, missing, "Problem")
    wrong = await client.get("/api/v1/customers/u/subscription", headers={"Authorization": "Bearer apk_wrong"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"


@pytest.mark.parametrize("external_id", ["%20%20", "nul%00", "x" * 256, ""])
async def test_bad_external_user_id_is_422(client: httpx.AsyncClient, world: World, external_id: str) -> None:
    response = await client.get(
        f"/api/v1/customers/{external_id}/subscription", headers={"Authorization": f"Bearer {world.key}"}
    )
    assert response.status_code == 422, response.text
    body = await conforms(client, response, "Problem")
    assert body["errors"] == [{"field": "externalUserId", "message": body["detail"]}]
