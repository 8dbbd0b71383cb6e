"""Webhook delivery (signatures, retries, endpoints API), events API, checkout expiry, faults, persistence."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import httpx
import pytest
import stripe
from stripe.params.checkout import SessionCreateParams

from stripe_sandbox import check_loopback, create_sandbox_app, sign
from stripe_sandbox.forms import decode
from tests.support.narrow import present

from .conftest import API_KEY, Sandbox, ServerThread, assert_covers, free_port

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_retries_after_500_with_backoff(sbx: Sandbox) -> None:
    sbx.receiver.fail_next = 2
    sbx.client.v1.customers.create(params={"email": "x@example.com"})
    sbx.client.v1.customers.create(params={"email": "y@example.com"})
    sbx.flush()
    requests = sbx.receiver.requests
    assert [r["failed"] for r in requests] == [True, True, False, False]
    events = sbx.receiver.events()
    assert [e.data.object.email for e in events] == ["x@example.com", "y@example.com"]
    deliveries = sbx.control("GET", "webhooks/deliveries")["deliveries"]
    assert [d["status"] for d in deliveries] == [500, 500, 200, 200]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 1]
    assert sbx.client.v1.events.retrieve(events[0].id).pending_webhooks == 0


def test_webhook_endpoint_api_and_signature(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    received: list[tuple[bytes, str]] = []
    lock = threading.Lock()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request: Request) -> Response:
        with lock:
            received.append((await request.body(), request.headers["stripe-signature"]))
        return Response("ok")

    port = free_port()
    with ServerThread(Starlette(routes=[Route("/wh", hook, methods=["POST"])]), port):
        c = sbx.client.v1
        endpoint = c.webhook_endpoints.create(
            params={"url": f"http://127.0.0.1:{port}/wh", "enabled_events": ["customer.created"]}
        )
        assert present(endpoint.secret).startswith("whsec_") and endpoint.status == "enabled"
        assert_covers(endpoint, fixtures["webhook_endpoint"])
        assert [e.id for e in c.webhook_endpoints.list().data] == [endpoint.id]
        assert "secret" not in c.webhook_endpoints.retrieve(endpoint.id).to_dict()
        cust = c.customers.create(params={"email": "hook@example.com"})
        c.customers.update(cust.id, params={"name": "Not sent"})
        sbx.flush()
        assert len(received) == 1
        event = stripe.Webhook.construct_event(received[0][0], received[0][1], endpoint.secret)
        assert event.type == "customer.created" and event.data.object.id == cust.id
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(received[0][0], received[0][1], "whsec_wrong")
        deleted = c.webhook_endpoints.delete(endpoint.id)
        assert deleted.deleted is True
        c.customers.create(params={"email": "after@example.com"})
        sbx.flush()
        assert len(received) == 1


def test_sign_matches_sdk() -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    header = sign(payload, "whsec_abc")
    stripe.WebhookSignature.verify_header(payload.decode(), header, "whsec_abc", tolerance=300)


def test_events_api_filters_and_paging(sbx: Sandbox) -> None:
    c = sbx.client.v1
    start = sbx.now()
    for i in range(3):
        c.customers.create(params={"email": f"e{i}@example.com"})
    sbx.advance(100)
    c.products.create(params={"name": "Later"})
    events = c.events.list(params={"created": {"gte": start}})
    assert [e.type for e in events.data] == [
        "product.created",
        "customer.created",
        "customer.created",
        "customer.created",
    ]
    later = c.events.list(params={"created": {"gt": start + 50}})
    assert [e.type for e in later.data] == ["product.created"]
    assert later.data[0].created >= start + 100
    only = c.events.list(params={"types": ["customer.created"], "limit": 2})
    assert len(only.data) == 2 and only.has_more
    rest = c.events.list(params={"type": "customer.*", "limit": 2, "starting_after": only.data[-1].id})
    assert len(rest.data) == 1 and not rest.has_more
    assert present(present(c.events.retrieve(rest.data[0].id).request).id).startswith("req_")


def test_expire_checkout_session(sbx: Sandbox) -> None:
    c = sbx.client.v1
    price = sbx.price()
    params: SessionCreateParams = {
        "mode": "subscription",
        "customer_email": "e@example.com",
        "success_url": "http://app.test/ok",
        "line_items": [{"price": price.id, "quantity": 1}],
    }
    session = c.checkout.sessions.create(params=params)
    expired = c.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        c.checkout.sessions.expire(session.id)
    assert sbx.pay(session.id)["status_code"] == 400
    assert httpx.get(present(session.url)).status_code == 410
    later = c.checkout.sessions.create(params=params)
    sbx.advance(24 * 3600 + 1)
    assert c.checkout.sessions.retrieve(later.id).status == "expired"
    sbx.flush()
    assert sbx.receiver.types().count("checkout.session.expired") == 2
    assert [s.id for s in c.checkout.sessions.list(params={"status": "expired"}).data] == [later.id, session.id]


def test_declined_card_keeps_session_open(sbx: Sandbox) -> None:
    c = sbx.client.v1
    price = sbx.price()
    session = c.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "d@example.com",
            "success_url": "http://app.test/ok",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )
    declined = sbx.pay(session.id, "4000000000000002")
    assert declined["status_code"] == 402 and declined["error"]["message"] == "Your card was declined."
    assert c.checkout.sessions.retrieve(session.id).status == "open"
    assert c.subscriptions.list().data == []


def test_injected_fault(sbx: Sandbox) -> None:
    _, sub = sbx.subscribe()
    sbx.control(
        "POST", "faults", json={"method": "DELETE", "path_prefix": "/v1/subscriptions/", "status": 500, "times": 1}
    )
    with pytest.raises(stripe.APIError) as err:
        sbx.client.v1.subscriptions.cancel(sub.id)
    assert err.value.http_status == 500
    assert sbx.client.v1.subscriptions.cancel(sub.id).status == "canceled"


def test_portal_session_api(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    cust = sbx.client.v1.customers.create(params={"email": "p@example.com"})
    portal = sbx.client.v1.billing_portal.sessions.create(
        params={"customer": cust.id, "return_url": "http://app.test/account"}
    )
    assert_covers(portal, fixtures["billing_portal.session"])
    assert portal.url == f"{sbx.url}/p/session/{portal.id}" and portal.return_url == "http://app.test/account"
    assert httpx.get(portal.url).status_code == 200


def test_state_file_survives_restart(tmp_path: Any) -> None:
    state = str(tmp_path / "sandbox.json")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ServerThread(create_sandbox_app(base_url=base, state_file=state), port):
        created = httpx.post(f"{base}/v1/customers", data={"email": "keep@example.com"}, headers=AUTH).json()
        httpx.post(f"{base}/_sandbox/clock/advance", data={"seconds": "3600"})
        now = httpx.get(f"{base}/_sandbox/clock").json()["now"]
    with ServerThread(create_sandbox_app(base_url=base, state_file=state), port):
        again = httpx.get(f"{base}/v1/customers/{created['id']}", headers=AUTH).json()
        assert again["email"] == "keep@example.com"
        assert httpx.get(f"{base}/_sandbox/clock").json()["now"] >= now
        httpx.post(f"{base}/_sandbox/reset")
        assert httpx.get(f"{base}/v1/customers/{created['id']}", headers=AUTH).status_code == 404


def test_loopback_only() -> None:
    check_loopback("127.0.0.1")
    check_loopback("::1")
    check_loopback("localhost")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("0.0.0.0")


def test_form_decoding() -> None:
    pairs = [
        ("items[0][price]", "price_1"),
        ("items[0][quantity]", "2"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("metadata[user_id]", "7"),
        ("created[gte]", "10"),
    ]
    assert decode(pairs) == {
        "items": [{"price": "price_1", "quantity": "2"}],
        "expand": ["a", "b"],
        "metadata": {"user_id": "7"},
        "created": {"gte": "10"},
    }


def test_unknown_route_is_stripe_404(sbx: Sandbox) -> None:
    response = httpx.get(f"{sbx.url}/v1/nope", headers=AUTH)
    assert response.status_code == 404 and "Unrecognized request URL" in response.json()["error"]["message"]


def test_sdk_retries_injected_500_with_same_idempotency_key(sbx: Sandbox) -> None:
    client = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sbx.url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=2,
    )
    sbx.control("POST", "faults", json={"method": "POST", "path_prefix": "/v1/customers", "status": 500})
    created = client.v1.customers.create(params={"email": "retry@example.com"})
    assert [c.id for c in client.v1.customers.list().data] == [created.id]
    assert sbx.control("GET", "faults")["faults"] == []


def test_webhook_endpoint_with_chosen_secret(sbx: Sandbox) -> None:
    data = {"url": sbx.receiver.url, "enabled_events[]": "*", "secret": "whsec_chosen"}
    response = httpx.post(f"{sbx.url}/v1/webhook_endpoints", data=data, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["secret"] == "whsec_chosen" and response.json()["enabled_events"] == ["*"]
    sbx.client.v1.customers.create(params={"email": "two@example.com"})
    sbx.flush()
    signatures = [r["headers"]["stripe-signature"] for r in sbx.receiver.requests]
    assert len(signatures) == 2  # the constructor endpoint and the API one, each with its own secret
    bodies = [r["body"] for r in sbx.receiver.requests]
    verified = []
    for body, header in zip(bodies, signatures, strict=True):
        for secret in ("whsec_chosen", "whsec_test_receiver_secret"):
            with contextlib.suppress(stripe.SignatureVerificationError):
                verified.append(stripe.Webhook.construct_event(body, header, secret).id)
    assert len(verified) == 2 and verified[0] == verified[1]


def test_reset_lets_the_delivery_on_the_wire_land_first_and_drops_the_queued_ones(sbx: Sandbox) -> None:
    # A reset must not leave an old delivery to land afterwards, where the next test (or the next demo) would see it.
    sbx.receiver.delay_seconds = 2.0  # long beside the few ms from the first attempt to the reset
    first = sbx.client.v1.customers.create(params={"email": "first@example.com"})
    sbx.client.v1.customers.create(params={"email": "queued@example.com"})
    deadline = time.monotonic() + 10
    while not sbx.control("GET", "webhooks/deliveries")["deliveries"]:
        assert time.monotonic() < deadline, "the sandbox never started delivering"
        time.sleep(0.01)
    assert sbx.receiver.requests == []  # the endpoint is still reading the first delivery
    sbx.control("POST", "reset")
    assert [e.data.object["id"] for e in sbx.receiver.events()] == [first.id]
    assert sbx.control("GET", "webhooks/deliveries")["deliveries"] == []
    assert sbx.control("POST", "webhooks/flush", json={"timeout": 1}) == {"idle": True, "pending": 0}
