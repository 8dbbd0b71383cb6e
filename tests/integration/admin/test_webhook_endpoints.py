"""The admin's webhook pages: add an endpoint (secret shown once), send a test event, read the delivery log,
replay, rotate, and see why a failing endpoint was disabled."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select

from payment.app_webhooks import delivery
from payment.app_webhooks.delivery import webhook_channel
from payment.models import WebhookEndpoint, utcnow
from payment.outbox.delivery import deliver_due
from payment.runtime import Services
from tests.integration.admin.conftest import page_token
from tests.integration.app_webhooks.receiver import webhook_receiver
from tests.support import factories

SECRET_RE = re.compile(r'id="signing-secret-value">(whsec_[A-Za-z0-9+/=]+)<')


async def _add(admin: httpx.AsyncClient, services: Services, url: str) -> tuple[WebhookEndpoint, str]:
    async with services.db.transaction() as session:
        app, _ = await factories.create_app(session)
    token = await page_token(admin, "/admin/webhook-endpoints")
    response = await admin.post(
        "/admin/webhook-endpoints/add",
        data={
            "csrf_token": token,
            "app_id": str(app.id),
            "url": url,
            "description": "Vega billing hooks",
            "event_types": ["entitlement.changed", "customer.updated"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    match = SECRET_RE.search(response.text)
    assert match is not None
    async with services.db.session() as session:
        endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.app_id == app.id))
    assert endpoint is not None and endpoint.event_types == ["entitlement.changed", "customer.updated"]
    return endpoint, match.group(1)


async def _post(
    admin: httpx.AsyncClient, endpoint: WebhookEndpoint, action: str, data: dict[str, str] | None = None
) -> httpx.Response:
    token = await page_token(admin, f"/admin/webhook-endpoints/{endpoint.id}")
    response = await admin.post(
        f"/admin/webhook-endpoints/{endpoint.id}/{action}", data={"csrf_token": token, **(data or {})}
    )
    assert response.status_code in (200, 303), response.text
    return response


async def test_add_test_event_log_and_replay(admin: httpx.AsyncClient, admin_services: Services) -> None:
    with webhook_receiver() as receiver:
        receiver.answer = lambda d: 204
        endpoint, secret = await _add(admin, admin_services, receiver.url)
        assert 'href="http://testserver/admin/webhook-endpoints"' in (await admin.get("/admin/")).text  # the menu
        page = await admin.get(f"/admin/webhook-endpoints/{endpoint.id}")
        assert secret not in page.text and endpoint.secret_hint in page.text  # shown once, then only a hint

        await _post(admin, endpoint, "test")
        await delivery.deliver(admin_services.db, admin_services.settings)
        [first] = await receiver.wait_accepted(1)
        assert first.verified(secret)["type"] == "webhook.test"
        page = await admin.get(f"/admin/webhook-endpoints/{endpoint.id}")
        row = re.search(r'<tr data-delivery-id="(\d+)">(.*?)</tr>', page.text, re.S)
        assert row is not None and first.id in row.group(2) and "delivered" in row.group(2) and "204" in row.group(2)

        await _post(admin, endpoint, "replay", {"delivery_id": row.group(1)})
        await delivery.deliver(admin_services.db, admin_services.settings)
        again = (await receiver.wait_accepted(2))[1]
        assert again.id == first.id  # a replay is the same message: the client can tell it has it already

        now = utcnow()
        await _post(
            admin,
            endpoint,
            "replay",
            {
                "from": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                "to": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            },
        )
        await delivery.deliver(admin_services.db, admin_services.settings)
        assert (await receiver.wait_accepted(3))[2].id == first.id

        rotated = await _post(admin, endpoint, "rotate", {"overlap_hours": "24"})
        match = SECRET_RE.search(rotated.text)
        assert match is not None and match.group(1) != secret


async def test_an_endpoint_failing_for_days_is_disabled_and_the_admin_sees_why(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    with webhook_receiver() as receiver:
        receiver.answer = lambda d: 500
        endpoint, _ = await _add(admin, admin_services, receiver.url)
        await _post(admin, endpoint, "test")
        channel = webhook_channel(admin_services.db, admin_services.settings)
        await deliver_due(admin_services.db, channel)
        later = utcnow() + timedelta(days=3, minutes=1)
        await deliver_due(admin_services.db, channel, clock=lambda: later)  # the retry, three days on
        assert len(receiver.all()) == 2

    page = await admin.get("/admin/webhook-endpoints")
    assert "Disabled" in page.text and "every delivery has failed since" in page.text
    detail = await admin.get(f"/admin/webhook-endpoints/{endpoint.id}")
    assert "HTTP 500" in detail.text
    await _post(admin, endpoint, "enabled", {"enabled": "yes"})
    async with admin_services.db.session() as session:
        row = await session.get_one(WebhookEndpoint, endpoint.id)
    assert row.enabled and row.disabled_reason is None


async def test_a_bad_url_is_refused_with_a_message_and_nothing_saved(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    async with admin_services.db.transaction() as session:
        app, _ = await factories.create_app(session)
    token = await page_token(admin, "/admin/webhook-endpoints")
    response = await admin.post(
        "/admin/webhook-endpoints/add",
        data={"csrf_token": token, "app_id": str(app.id), "url": "ftp://nope", "event_types": ["customer.updated"]},
    )
    assert response.status_code == 422 and "Enter the endpoint" in response.text
    async with admin_services.db.session() as session:
        assert await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.app_id == app.id)) is None
