"""POST /api/v1/webhooks/stripe as Stripe calls it: signed raw bodies, duplicates, bad and stale signatures."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import func, select, text

from payment.config import DEV_STRIPE_WEBHOOK_SECRET
from payment.models import StripeEvent
from payment.runtime import Services
from tests.support.stripe import event_body, sign

URL = "/api/v1/webhooks/stripe"
SUBSCRIPTION = {"id": "sub_webhooktest", "object": "subscription", "customer": "cus_webhooktest"}


async def _post(client: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await client.post(URL, content=body, headers=headers)


async def _rows(services: Services, event_id: str) -> list[StripeEvent]:
    async with services.db.session() as session:
        return list((await session.scalars(select(StripeEvent).where(StripeEvent.stripe_event_id == event_id))).all())


async def _jobs_for(services: Services, row_id: int) -> int:
    async with services.db.session() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'payment:apply_stripe_event' "
                "AND (args->>'event_row_id')::bigint = :id"
            ),
            {"id": row_id},
        )
    return int(count or 0)


async def test_signed_event_is_stored_once_enqueued_and_acknowledged(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = event_body("customer.subscription.updated", SUBSCRIPTION, event_id="evt_api_ok")
    response = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    [row] = await _rows(services, "evt_api_ok")
    assert (row.type, row.status, row.object_id, row.received_via) == (
        "customer.subscription.updated",
        "pending",
        "sub_webhooktest",
        "webhook",
    )
    assert row.payload["data"]["object"] == SUBSCRIPTION
    assert await _jobs_for(services, row.id) == 1


async def test_duplicate_delivery_is_a_200_no_op(client: httpx.AsyncClient, services: Services) -> None:
    body = event_body("invoice.paid", {"id": "in_dup", "object": "invoice"}, event_id="evt_api_dup")
    first = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET))
    # Stripe re-signs each retry with a new timestamp
    again = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET, timestamp=int(time.time()) + 1))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    assert len(await _rows(services, "evt_api_dup")) == 1


async def test_bad_missing_or_stale_signature_is_400_and_nothing_stored(
    client: httpx.AsyncClient, services: Services
) -> None:
    async with services.db.session() as session:
        before = await session.scalar(select(func.count()).select_from(StripeEvent))
    body = event_body("invoice.paid", {"id": "in_bad", "object": "invoice"}, event_id="evt_api_bad")
    other = event_body("invoice.paid", {"id": "in_other", "object": "invoice"}, event_id="evt_api_bad")
    cases = {
        "wrong secret": sign(body, "whsec_not_ours"),
        "missing": None,
        "garbage": "t=123,v1=deadbeef",
        "stale (6 minutes old)": sign(body, DEV_STRIPE_WEBHOOK_SECRET, timestamp=int(time.time()) - 360),
        "signed for another body": sign(other, DEV_STRIPE_WEBHOOK_SECRET),
    }
    for case, signature in cases.items():
        response = await _post(client, body, signature)
        assert response.status_code == 400, case
        assert response.headers["content-type"] == "application/problem+json", case
        assert response.json()["code"] == "invalid_signature", case
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(StripeEvent)) == before


async def test_signature_within_five_minutes_is_accepted(client: httpx.AsyncClient) -> None:
    body = event_body("invoice.paid", {"id": "in_late", "object": "invoice"}, event_id="evt_api_late")
    response = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET, timestamp=int(time.time()) - 240))
    assert response.status_code == 200


async def test_unknown_type_is_acknowledged_and_not_processed(client: httpx.AsyncClient, services: Services) -> None:
    body = event_body("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"}, event_id="evt_api_unknown")
    response = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 200
    [row] = await _rows(services, "evt_api_unknown")
    assert row.status == "ignored" and row.handled_at is not None
    assert await _jobs_for(services, row.id) == 0


async def test_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = await _post(client, body, sign(body, DEV_STRIPE_WEBHOOK_SECRET))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large" and response.json()["status"] == 413


async def test_other_methods_and_unknown_api_paths_are_problems(client: httpx.AsyncClient) -> None:
    wrong_method = await client.get(URL)
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.json()["code"] == "method_not_allowed" and "POST" in wrong_method.headers["allow"]
    unknown = await client.get("/api/v1/no-such-thing")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["code"] == "not_found"
    # outside /api, Starlette's plain answer stays
    elsewhere = await client.get("/no-such-page")
    assert elsewhere.status_code == 404 and elsewhere.headers["content-type"].startswith("text/plain")
