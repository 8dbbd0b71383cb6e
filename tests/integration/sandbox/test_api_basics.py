"""Catalog, customers, auth, errors, paging and idempotency through the real SDK (sync and async)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from tests.support.narrow import present

from .conftest import API_KEY, Sandbox, assert_covers


def test_bad_api_key_is_401(sbx: Sandbox) -> None:
    client = stripe.StripeClient(
        "sk_live_nope", base_addresses={"api": sbx.url}, http_client=stripe.HTTPXClient(allow_sync_methods=True)
    )
    with pytest.raises(stripe.AuthenticationError) as err:
        client.v1.customers.list()
    assert err.value.http_status == 401
    response = httpx.get(f"{sbx.url}/v1/customers")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_products_and_prices(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    c = sbx.client.v1
    product = c.products.create(params={"name": "Aquoris Pro", "metadata": {"app": "aquoris"}})
    assert product.object == "product" and product.metadata["app"] == "aquoris"
    monthly = c.prices.create(
        params={
            "product": product.id,
            "currency": "thb",
            "unit_amount": 19900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
        }
    )
    yearly = c.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 5900, "recurring": {"interval": "year"}}
    )
    assert present(monthly.recurring).interval == "month" and monthly.unit_amount == 19900 and monthly.currency == "thb"
    assert present(yearly.recurring).interval == "year" and yearly.type == "recurring"
    assert c.prices.retrieve(monthly.id).id == monthly.id
    assert c.products.retrieve(product.id).name == "Aquoris Pro"
    listed = c.prices.list(params={"product": product.id})
    assert [p.id for p in listed.data] == [yearly.id, monthly.id]
    assert [p.id for p in c.prices.list(params={"lookup_keys": ["pro_monthly"]}).data] == [monthly.id]
    assert_covers(product, fixtures["product"])
    assert_covers(monthly, fixtures["price"])
    assert [p.id for p in c.products.list().data] == [product.id]


def test_customers_update_list_search(sbx: Sandbox, fixtures: dict[str, Any]) -> None:
    c = sbx.client.v1
    ann = c.customers.create(params={"email": "ann@example.com", "metadata": {"user_id": "u1"}})
    bob = c.customers.create(params={"email": "bob@example.com", "name": "Bob"})
    assert_covers(ann, fixtures["customer"])
    updated = c.customers.update(ann.id, params={"name": "Ann", "metadata": {"plan": "pro"}})
    assert updated.name == "Ann" and present(updated.metadata).to_dict() == {"user_id": "u1", "plan": "pro"}
    assert [x.id for x in c.customers.list(params={"email": "bob@example.com"}).data] == [bob.id]
    found = c.customers.search(params={"query": "email:'ann@example.com'"})
    assert [x.id for x in found.data] == [ann.id]
    found = c.customers.search(params={"query": "metadata['user_id']:'u1'"})
    assert [x.id for x in found.data] == [ann.id]
    assert c.customers.search(params={"query": "email:'nobody@example.com'"}).data == []
    assert c.customers.retrieve(bob.id).name == "Bob"


def test_unknown_id_is_404(sbx: Sandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        sbx.client.v1.customers.retrieve("cus_doesnotexist")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    assert "cus_doesnotexist" in str(err.value.user_message)


def test_validation_error_names_param(sbx: Sandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        sbx.client.v1.prices.create(params={"currency": "thb", "unit_amount": 100})
    assert err.value.http_status == 400 and err.value.param == "product"


def test_paging(sbx: Sandbox) -> None:
    c = sbx.client.v1
    ids = [c.customers.create(params={"email": f"u{i}@example.com"}).id for i in range(7)]
    newest_first = ids[::-1]
    page1 = c.customers.list(params={"limit": 3})
    assert [x.id for x in page1.data] == newest_first[:3] and page1.has_more
    page2 = c.customers.list(params={"limit": 3, "starting_after": page1.data[-1].id})
    assert [x.id for x in page2.data] == newest_first[3:6] and page2.has_more
    page3 = c.customers.list(params={"limit": 3, "starting_after": page2.data[-1].id})
    assert [x.id for x in page3.data] == newest_first[6:] and not page3.has_more
    back = c.customers.list(params={"limit": 2, "ending_before": page2.data[0].id})
    assert [x.id for x in back.data] == newest_first[1:3]
    assert [x.id for x in page1.auto_paging_iter()] == newest_first
    assert page1.url == "/v1/customers"


def test_idempotency_replay_and_conflict(sbx: Sandbox) -> None:
    c = sbx.client.v1
    first = c.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    again = c.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    assert again.id == first.id
    assert len(c.customers.list().data) == 1
    with pytest.raises(stripe.IdempotencyError) as err:
        c.customers.create(params={"email": "other@example.com"}, options={"idempotency_key": "k1"})
    assert err.value.http_status == 400
    replay = httpx.post(
        f"{sbx.url}/v1/customers",
        data={"email": "a@example.com"},
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k1"},
    )
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["id"] == first.id


def test_a_500_once_the_endpoint_began_is_saved_under_its_key_and_one_before_it_is_not(sbx: Sandbox) -> None:
    """Stripe saves the first answer of a key once the endpoint's execution began, 500s included; an error before
    that (here an injected one at the request stage) saves nothing, so the same key runs the request again."""
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def create(key: str) -> httpx.Response:
        return sbx.http.post(
            "/v1/customers", data={"email": "a@example.com"}, headers={**headers, "Idempotency-Key": key}
        )

    fault = {"method": "POST", "path_prefix": "/v1/customers", "status": "500", "stage": "execution"}
    sbx.control("POST", "faults", data=fault)
    failed = create("k500")
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
    replayed = create("k500")
    assert replayed.status_code == 500 and replayed.json() == failed.json()
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.headers["original-request"] == failed.headers["request-id"]
    assert sbx.client.v1.customers.list().data == []  # the retry ran nothing
    assert create("k-new").status_code == 200  # a new key does

    sbx.control("POST", "faults", data={**fault, "stage": "request"})
    assert create("k-early").status_code == 500
    again = create("k-early")
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers


async def test_async_client(sbx: Sandbox) -> None:
    c = sbx.async_client().v1
    product = await c.products.create_async(params={"name": "Async"})
    price = await c.prices.create_async(
        params={"product": product.id, "currency": "usd", "unit_amount": 500, "recurring": {"interval": "month"}}
    )
    customer = await c.customers.create_async(params={"email": "async@example.com"})
    session = await c.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "success_url": "http://app.test/ok",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )
    assert session.status == "open" and present(session.url).startswith(sbx.url)
    assert (await c.customers.retrieve_async(customer.id)).email == "async@example.com"
    found = await c.customers.search_async(params={"query": "email:'async@example.com'"})
    assert found.data[0].id == customer.id
    with pytest.raises(stripe.InvalidRequestError):
        await c.subscriptions.retrieve_async("sub_missing")
