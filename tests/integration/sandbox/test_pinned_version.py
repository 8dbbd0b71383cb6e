"""What the pinned version changed, as a client observes it: invoice payments, `cancel_at` enums, Checkout without a
subscription on a decline, the version on every answer, API keys as Bearer or Basic, Dashboard refunds, decline
messages, and events for endpoints still on the last pre-basil version."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import stripe

from payment.stripe.version import API_VERSION, PRE_BASIL_VERSION
from tests.support.narrow import expanded, id_of, present

from .conftest import API_KEY, Sandbox, ServerThread, free_port

DAY = 86400


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}


def test_every_answer_carries_the_pinned_version_and_the_key_is_taken_as_bearer_or_basic(sbx: Sandbox) -> None:
    ok = httpx.get(f"{sbx.url}/v1/customers", headers=_basic(API_KEY))  # what `curl -u sk_test_...:` sends
    assert ok.status_code == 200 and ok.headers["Stripe-Version"] == API_VERSION
    assert httpx.get(f"{sbx.url}/v1/customers", auth=(API_KEY, "")).status_code == 200
    wrong = httpx.get(f"{sbx.url}/v1/customers", headers=_basic("sk_test_wrongkey0000"))
    assert wrong.status_code == 200  # any sk_test_ key is the sandbox's account
    bad = httpx.get(f"{sbx.url}/v1/customers", headers=_basic("pk_live_abcdefghijkl"))
    assert bad.status_code == 401 and bad.headers["Stripe-Version"] == API_VERSION
    assert bad.json()["error"]["message"] == "Invalid API Key provided: pk_live_****ijkl"
    encoded = "Basic " + base64.b64encode(b"\xff\xfe not a key").decode()
    unreadable = httpx.get(f"{sbx.url}/v1/customers", headers={"Authorization": encoded})
    message = unreadable.json()["error"]["message"]
    assert unreadable.status_code == 401 and encoded.split()[1] not in message and "-u YOUR_SECRET_KEY:" in message
    none = httpx.get(f"{sbx.url}/v1/customers")
    assert none.status_code == 401 and "You did not provide an API key" in none.json()["error"]["message"]
    older = httpx.get(f"{sbx.url}/v1/customers", headers={**_basic(API_KEY), "Stripe-Version": PRE_BASIL_VERSION})
    assert older.status_code == 400 and API_VERSION in older.json()["error"]["message"]
    pinned = httpx.get(f"{sbx.url}/v1/customers", headers={**_basic(API_KEY), "Stripe-Version": API_VERSION})
    assert pinned.status_code == 200
    sdk_response = present(sbx.client.v1.customers.list().last_response)
    assert sdk_response.headers["Stripe-Version"] == API_VERSION  # the SDK's own
    unknown = httpx.get(f"{sbx.url}/v1/nothing_here", headers=_basic(API_KEY))
    assert unknown.status_code == 404 and unknown.headers["Stripe-Version"] == API_VERSION


def test_a_declined_card_in_checkout_creates_no_subscription(sbx: Sandbox) -> None:
    c = sbx.client.v1
    price = sbx.price()
    customer = c.customers.create(params={"email": "declined@example.com"})
    session = c.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "success_url": "http://app.test/ok",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )
    for card in ("4000000000000002", "4000000000009995", "4000000000000341"):
        paid = sbx.pay(session.id, card)
        assert paid["status_code"] == 402 and paid["error"]["type"] == "card_error"
    assert c.subscriptions.list(params={"customer": customer.id, "status": "all"}).data == []
    assert c.invoices.list(params={"customer": customer.id}).data == []
    session = c.checkout.sessions.retrieve(session.id)
    assert session.status == "open" and session.subscription is None
    sbx.flush()
    assert not [t for t in sbx.receiver.types() if t.startswith(("customer.subscription.", "invoice."))]


def test_invoice_payments_name_the_payment_intent_and_charge(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    invoice = c.invoices.retrieve(id_of(sub.latest_invoice))
    assert "payments" not in invoice and "charge" not in invoice and "payment_intent" not in invoice
    [payment] = c.invoice_payments.list(params={"invoice": invoice.id}).data
    assert payment.invoice == invoice.id and payment.status == "paid" and payment.is_default
    assert payment.amount_paid == payment.amount_requested == invoice.amount_paid == 19900
    assert payment.payment.type == "payment_intent" and payment.status_transitions.paid_at
    by_intent = c.invoice_payments.list(
        params={"payment": {"type": "payment_intent", "payment_intent": id_of(payment.payment.payment_intent)}}
    )
    assert [p.id for p in by_intent.data] == [payment.id]
    assert c.invoice_payments.list(params={"invoice": invoice.id, "status": "open"}).data == []
    with_charge = c.invoices.retrieve(
        invoice.id, params={"expand": ["payments.data.payment.payment_intent.latest_charge"]}
    )
    charge = expanded(expanded(present(with_charge.payments).data[0].payment.payment_intent).latest_charge)
    assert charge.paid and charge.amount == 19900


def test_cancel_at_takes_a_timestamp_or_the_period_end_enums(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    end = sub["items"].data[0].current_period_end
    for enum in ("min_period_end", "max_period_end"):
        updated = c.subscriptions.update(sub.id, params={"cancel_at": enum})
        assert updated.cancel_at == end and updated.cancel_at_period_end is False and updated.status == "active"
    flagged = c.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert flagged.cancel_at == end and flagged.cancel_at_period_end is True
    when = sbx.now() + 5 * DAY
    dated = c.subscriptions.update(sub.id, params={"cancel_at": when})
    assert dated.cancel_at == when and dated.cancel_at_period_end is False
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.subscriptions.update(sub.id, params={"cancel_at": "period_end"})
    assert err.value.param == "cancel_at"
    cleared = c.subscriptions.update(sub.id, params={"cancel_at": ""})
    assert cleared.cancel_at is None and cleared.canceled_at is None
    c.subscriptions.update(sub.id, params={"cancel_at": "min_period_end"})
    sbx.advance(end - sbx.now() + 1)
    ended = c.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == end
    assert len(c.invoices.list(params={"subscription": sub.id}).data) == 1  # it ended instead of renewing


def test_a_dashboard_refund_has_no_metadata_and_emits_what_stripe_emits(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    sbx.flush()
    sbx.receiver.requests.clear()
    answer = sbx.control("POST", f"invoices/{sub.latest_invoice}/dashboard_refund", data={"amount": "4000"})
    refund = c.refunds.retrieve(answer["refund"]["id"])
    assert refund.amount == 4000 and present(refund.metadata).to_dict() == {} and refund.status == "succeeded"
    [payment] = c.invoice_payments.list(params={"invoice": id_of(sub.latest_invoice)}).data
    assert refund.payment_intent == payment.payment.payment_intent
    sbx.flush()
    events = sbx.receiver.events()
    assert [e.type for e in events] == ["refund.created", "charge.refunded"]
    charge = events[1].data.object
    assert charge.id == refund.charge and charge.amount_refunded == 4000 and charge.refunded is False
    assert "refunds" not in charge
    assert present(events[1].data.previous_attributes).amount_refunded == 0
    sbx.receiver.requests.clear()
    sbx.advance(DAY + 1)  # the card network acknowledges the refund about a day later
    sbx.flush()
    [updated] = [e for e in sbx.receiver.events() if e.type.startswith("refund.")]
    assert updated.type == "refund.updated" and updated.data.object.id == refund.id
    card = present(updated.data.object.destination_details).card
    assert card.reference_status == "available" and len(card.reference) == 23
    assert present(updated.data.previous_attributes).destination_details.card.reference_status == "pending"
    rest = sbx.http.post(f"/_sandbox/invoices/{sub.latest_invoice}/dashboard_refund")
    assert rest.status_code == 200 and rest.json()["refund"]["amount"] == 15900
    again = sbx.http.post(f"/_sandbox/invoices/{sub.latest_invoice}/dashboard_refund")
    assert again.status_code == 400 and again.json()["error"]["code"] == "charge_already_refunded"


def test_a_failed_renewal_carries_the_decline_message(sbx: Sandbox) -> None:
    c = sbx.client.v1
    _, sub = sbx.subscribe()
    sbx.set_card(sub.customer, "4000000000009995")
    sbx.flush()
    sbx.receiver.requests.clear()
    sbx.advance(sub["items"].data[0].current_period_end - sbx.now() + 60)
    sbx.flush()
    failed = next(e for e in sbx.receiver.events() if e.type == "invoice.payment_failed").data.object
    assert failed.status == "open" and failed.attempt_count == 1
    [payment] = c.invoice_payments.list(params={"invoice": failed.id}).data
    assert payment.status == "open" and payment.amount_paid is None
    pi = c.payment_intents.retrieve(id_of(payment.payment.payment_intent), params={"expand": ["latest_charge"]})
    error = present(pi.last_payment_error)
    assert error.message == "Your card has insufficient funds." and error.decline_code == "insufficient_funds"
    charge = expanded(pi.latest_charge)
    assert charge.failure_message == "Your card has insufficient funds." and charge.status == "failed"


def test_an_endpoint_on_the_pre_basil_version_receives_acacia_shapes(sbx: Sandbox) -> None:
    bodies: list[dict[str, Any]] = []
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request: Request) -> Response:
        bodies.append(json.loads(await request.body()))
        return Response("ok")

    port = free_port()
    with ServerThread(Starlette(routes=[Route("/old", hook, methods=["POST"])]), port):
        c = sbx.client.v1
        endpoint = c.webhook_endpoints.create(
            params={"url": f"http://127.0.0.1:{port}/old", "enabled_events": ["*"], "api_version": PRE_BASIL_VERSION}
        )
        assert endpoint.api_version == PRE_BASIL_VERSION
        _, sub = sbx.subscribe()
        sbx.flush()
    assert bodies and {b["api_version"] for b in bodies} == {PRE_BASIL_VERSION}
    assert not [b for b in bodies if b["type"].startswith("invoice_payment.")]
    paid = next(b for b in bodies if b["type"] == "invoice.paid")["data"]["object"]
    [payment] = c.invoice_payments.list(params={"invoice": paid["id"]}).data
    pi = c.payment_intents.retrieve(id_of(payment.payment.payment_intent))
    assert paid["paid"] is True and paid["subscription"] == sub.id and "parent" not in paid
    assert paid["payment_intent"] == pi.id and paid["charge"] == pi.latest_charge
    line = paid["lines"]["data"][0]
    assert line["subscription_item"] == sub["items"].data[0].id and line["type"] == "subscription"
    assert line["price"]["id"] == line["plan"]["id"] == sub["items"].data[0].price.id and "parent" not in line
    created = next(b for b in bodies if b["type"] == "customer.subscription.created")["data"]["object"]
    assert created["current_period_end"] == sub["items"].data[0].current_period_end
    pinned = next(e for e in sbx.receiver.events() if e.type == "invoice.paid")
    assert pinned.api_version == API_VERSION and "charge" not in pinned.data.object
    with pytest.raises(stripe.InvalidRequestError):
        c.webhook_endpoints.create(
            params={"url": "http://x.test", "enabled_events": ["*"], "api_version": "2020-08-27"}
        )
