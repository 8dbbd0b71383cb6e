"""Subscribe and Manage billing: a real Stripe Checkout Session (the sandbox, through the SDK), never two."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from payment.billing.customers import get_by_external_id
from payment.models import AuditLog, CheckoutSession, Customer
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, csrf_of, open_billing, text_of
from tests.support import factories
from tests.support.app import ThreadServer
from tests.support.stripe import reset_sandbox, sandbox_call


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services)


async def subscribe(
    client: httpx.AsyncClient, path: str, plan: str, *, csrf: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if csrf is None:
        csrf = csrf_of((await client.get(path)).text)
    return await client.post(
        f"{path}/subscribe", data={"plan": plan, "csrf": csrf, "lang": "en"}, headers=headers or {}
    )


async def checkouts_of(services: Services, user: str) -> list[CheckoutSession]:
    async with services.db.session() as session:
        cust = await get_by_external_id(session, user)
        assert cust is not None
        return list(
            (
                await session.execute(
                    select(CheckoutSession).where(CheckoutSession.customer_id == cust.id).order_by(CheckoutSession.id)
                )
            ).scalars()
        )


async def stripe_checkout(sandbox_url: str, checkout_id: str) -> dict[str, object]:
    data: dict[str, object] = (await sandbox_call("GET", f"{sandbox_url}/v1/checkout/sessions/{checkout_id}")).json()
    return data


async def test_subscribe_redirects_to_stripe_checkout_for_the_plans_price(
    client: httpx.AsyncClient, scene: Scene, services: Services, sandbox_server: ThreadServer
) -> None:
    path, user = await open_billing(client, scene, email="buyer@example.com", name="Buyer")
    response = await subscribe(client, path, "pro")
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{sandbox_server.url}/c/pay/cs_")
    [row] = await checkouts_of(services, user)
    assert row.status == "open" and row.plan_id == scene.pro.id and row.app_id == scene.app.id
    stripe = await stripe_checkout(sandbox_server.url, row.stripe_checkout_session_id)
    async with services.db.session() as session:
        cust = await get_by_external_id(session, user)
    assert cust is not None and cust.stripe_customer_id == stripe["customer"]
    assert stripe["mode"] == "subscription"
    assert stripe["client_reference_id"] == str(cust.id)
    metadata = stripe["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["customer_id"] == str(cust.id)
    assert metadata["plan_id"] == str(scene.pro.id) and metadata["app_id"] == str(scene.app.id)
    assert metadata["billing_session_id"]
    assert stripe["success_url"] == (f"{services.settings.base_url}{path}/return?session_id={{CHECKOUT_SESSION_ID}}")
    assert stripe["cancel_url"] == f"{services.settings.base_url}{path}?checkout=canceled"
    customer = (await sandbox_call("GET", f"{sandbox_server.url}/v1/customers/{cust.stripe_customer_id}")).json()
    assert customer["email"] == "buyer@example.com"
    assert customer["metadata"]["customer_id"] == str(cust.id)


async def test_second_subscribe_reuses_the_open_checkout(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    first = await subscribe(client, path, "pro")
    second = await subscribe(client, path, "pro")
    assert first.headers["location"] == second.headers["location"]
    assert len(await checkouts_of(services, user)) == 1


async def test_concurrent_subscribes_open_one_checkout(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    csrf = csrf_of((await client.get(path)).text)
    responses = await asyncio.gather(*(subscribe(client, path, "pro", csrf=csrf) for _ in range(4)))
    assert {r.status_code for r in responses} == {303}
    assert len({r.headers["location"] for r in responses}) == 1
    assert len(await checkouts_of(services, user)) == 1


async def test_switching_plan_expires_the_other_open_checkout(
    client: httpx.AsyncClient, scene: Scene, services: Services, sandbox_server: ThreadServer
) -> None:
    path, user = await open_billing(client, scene)
    await subscribe(client, path, "pro")
    second = await subscribe(client, path, "vega-team")
    first_row, second_row = await checkouts_of(services, user)
    assert (first_row.status, second_row.status) == ("expired", "open")
    assert (await stripe_checkout(sandbox_server.url, first_row.stripe_checkout_session_id))["status"] == "expired"
    assert second.headers["location"] == second_row.url


async def test_subscribe_with_a_live_subscription_is_refused_without_a_checkout(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    csrf = csrf_of((await client.get(path)).text)
    async with services.db.transaction() as session:
        cust = await get_by_external_id(session, user)
        assert cust is not None
        await factories.create_subscription(session, cust, scene.pro)
    response = await subscribe(client, path, "vega-team", csrf=csrf)
    assert response.status_code == 303
    assert response.headers["location"] == f"{path}?lang=en&error=already_subscribed"
    page = text_of((await client.get(response.headers["location"])).text)
    assert "You already have an active subscription." in page
    assert await checkouts_of(services, user) == []


@pytest.mark.parametrize("plan", ["free", "orion-max", "retired", "nope"])
async def test_only_paid_plans_of_the_app_can_be_bought(
    client: httpx.AsyncClient, scene: Scene, services: Services, plan: str
) -> None:
    path, user = await open_billing(client, scene)
    response = await subscribe(client, path, plan)
    assert response.status_code == 303
    assert "error=plan_" in response.headers["location"]
    assert await checkouts_of(services, user) == []


async def test_subscribe_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    other_path, _ = await open_billing(client, scene)
    other_token = csrf_of((await client.get(other_path)).text)
    for csrf in ("", "0" * 64, other_token):
        response = await subscribe(client, path, "pro", csrf=csrf)
        assert response.status_code == 403
        assert "Reload it and try again." in text_of(response.text)
    assert await checkouts_of(services, user) == []


async def test_subscribe_from_another_origin_is_refused(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    response = await subscribe(client, path, "pro", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert await checkouts_of(services, user) == []
    same = await subscribe(client, path, "pro", headers={"Origin": "http://testserver"})
    assert same.status_code == 303


async def test_subscribe_on_an_expired_link_shows_the_expired_page(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    response = await client.post("/billing/unknown-token/subscribe", data={"plan": "pro", "csrf": "x"})
    assert response.status_code == 404
    assert "This billing link is not valid" in text_of(response.text)


async def test_stripe_down_is_a_message_not_an_error(
    client: httpx.AsyncClient, scene: Scene, services: Services, sandbox_server: ThreadServer
) -> None:
    path, user = await open_billing(client, scene)
    csrf = csrf_of((await client.get(path)).text)
    await sandbox_call(
        "POST", f"{sandbox_server.url}/_sandbox/faults", json={"path_prefix": "/v1/", "status": 500, "times": 10}
    )
    try:
        response = await subscribe(client, path, "pro", csrf=csrf)
    finally:
        await sandbox_call("DELETE", f"{sandbox_server.url}/_sandbox/faults")
    assert response.status_code == 303
    assert response.headers["location"].endswith("error=stripe")
    page = text_of((await client.get(response.headers["location"])).text)
    assert "We could not reach the payment provider. Nothing was charged" in page
    assert await checkouts_of(services, user) == []


async def test_manage_billing_opens_the_stripe_portal(
    client: httpx.AsyncClient, scene: Scene, services: Services, sandbox_server: ThreadServer
) -> None:
    path, user = await open_billing(client, scene)
    await subscribe(client, path, "pro")  # creates the Stripe customer
    async with services.db.transaction() as session:
        cust = await get_by_external_id(session, user)
        assert cust is not None
        await factories.create_subscription(session, cust, scene.pro)
    html = (await client.get(path)).text
    assert "Update card" in html
    response = await client.post(f"{path}/portal", data={"csrf": csrf_of(html), "lang": "en"})
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{sandbox_server.url}/p/session/")
    async with services.db.session() as session:
        opened = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "billing_portal.opened", AuditLog.entity_id == str(cust.id))
        )
    assert opened == 1


async def test_manage_billing_without_stripe_billing_is_refused(client: httpx.AsyncClient, scene: Scene) -> None:
    path, _ = await open_billing(client, scene)
    csrf = csrf_of((await client.get(path)).text)
    response = await client.post(f"{path}/portal", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"].endswith("error=no_stripe_billing")


async def test_return_page_waits_for_the_webhook_then_shows_the_plan(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    await subscribe(client, path, "pro")
    [row] = await checkouts_of(services, user)
    back = await client.get(f"{path}/return", params={"session_id": row.stripe_checkout_session_id})
    assert back.status_code == 202
    assert "Processing your payment" in text_of(back.text)
    status = await client.get(f"{path}/status", params={"session_id": row.stripe_checkout_session_id})
    assert status.json() == {"state": "processing", "plan": "pro"}
    # what the webhook does once Stripe confirms the payment
    async with services.db.transaction() as session:
        cust = await session.get(Customer, row.customer_id)
        assert cust is not None
        await factories.create_subscription(session, cust, scene.pro)
    status = await client.get(f"{path}/status", params={"session_id": row.stripe_checkout_session_id})
    assert status.json() == {"state": "active", "plan": "pro"}
    done = await client.get(f"{path}/return", params={"session_id": row.stripe_checkout_session_id})
    assert done.status_code == 303 and done.headers["location"].endswith("notice=subscribed")
    page = text_of((await client.get(done.headers["location"])).text)
    assert "You are subscribed to Aquoris PRO." in page


async def test_return_with_someone_elses_checkout_shows_nothing_of_it(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    await subscribe(client, path, "pro")
    [row] = await checkouts_of(services, user)
    other_path, _ = await open_billing(client, scene)
    status = await client.get(f"{other_path}/status", params={"session_id": row.stripe_checkout_session_id})
    assert status.status_code == 404
    back = await client.get(f"{other_path}/return", params={"session_id": row.stripe_checkout_session_id})
    assert back.status_code == 303 and back.headers["location"].endswith("checkout=unknown")


async def test_paid_checkout_awaiting_its_webhook_blocks_a_checkout_for_another_plan(
    client: httpx.AsyncClient, scene: Scene, services: Services, sandbox_server: ThreadServer
) -> None:
    path, user = await open_billing(client, scene)
    await subscribe(client, path, "pro")
    [row] = await checkouts_of(services, user)
    # paid on Stripe; no webhook is registered in this module, so our side still sees the checkout open
    await sandbox_call("POST", f"{sandbox_server.url}/_sandbox/checkout_sessions/{row.stripe_checkout_session_id}/pay")
    response = await subscribe(client, path, "vega-team")
    assert response.status_code == 303
    assert response.headers["location"].endswith("error=checkout_processing")
    assert "Your payment is being processed" in text_of((await client.get(response.headers["location"])).text)
    assert [r.stripe_checkout_session_id for r in await checkouts_of(services, user)] == [
        row.stripe_checkout_session_id
    ]


async def test_oversized_form_is_refused_with_a_page(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, user = await open_billing(client, scene)
    response = await client.post(
        f"{path}/subscribe", data={"plan": "pro", "csrf": "x" * services.settings.max_body_bytes}
    )
    assert response.status_code == 413
    assert "Reload it and try again." in text_of(response.text)
    assert await checkouts_of(services, user) == []
