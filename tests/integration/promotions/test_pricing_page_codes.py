"""A promotion code typed on our pricing page: a good one opens Checkout with its discount (and the paid invoice shows
Subtotal / Discount / Total); a bad one brings the page back with 422, the reason in the user's language, the code
and the plan kept, and nothing made at Stripe."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from payment.billing.customers import get_by_external_id
from payment.models import CheckoutSession, Coupon, utcnow
from payment.promotions import service as promotions
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, csrf_of, open_billing, text_of
from tests.support.app import ThreadServer
from tests.support.stripe import World, reset_sandbox, sandbox_call

_n = count(1)


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services, slug="vega-codes")


@pytest.fixture
def world(services: Services, sandbox_server: ThreadServer, scene: Scene) -> World:
    return World(services, sandbox_server.url)


async def _coupon(services: Services, code: str, **terms: Any) -> Coupon:
    data = promotions.CouponInput(name=f"Offer {code}", code=code, **terms)
    return await promotions.create_coupon(
        services.db, services.stripe, data, request_key=f"page-{code}-{next(_n)}", actor="test"
    )


async def _stripe_checkouts(world: World) -> int:
    """How many Checkout Sessions the sandbox holds (every one ever created)."""
    total, params = 0, "limit=100"
    while True:
        page = (await sandbox_call("GET", f"{world.sandbox_url}/v1/checkout/sessions?{params}")).json()
        total += len(page["data"])
        if not page["has_more"]:
            return total
        params = f"limit=100&starting_after={page['data'][-1]['id']}"


async def _submit(
    client: httpx.AsyncClient, scene: Scene, user: str, plan: str, code: str, lang: str = "en"
) -> tuple[str, httpx.Response]:
    path, _ = await open_billing(client, scene, user)
    page = await client.get(f"{path}?lang={lang}")
    assert page.status_code == 200
    response = await client.post(
        f"{path}/subscribe", data={"plan": plan, "promotion_code": code, "csrf": csrf_of(page.text), "lang": lang}
    )
    return path, response


async def _pay(world: World, session_id: str) -> None:
    seen = len(await world.events())
    await world.control("POST", f"checkout_sessions/{session_id}/pay")
    await world.apply_all(await world.events(after=seen))


async def test_a_good_code_opens_checkout_with_its_discount_and_the_invoice_shows_it(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    await _coupon(services, "PAGE20", percent_off=Decimal("20"), duration="once", app_id=scene.app.id)
    path, _ = await open_billing(client, scene, "page-good")
    page = await client.get(path)
    assert 'name="promotion_code"' in page.text and "Promotion code (optional)" in text_of(page.text)
    response = await client.post(
        f"{path}/subscribe", data={"plan": "pro", "promotion_code": " page20 ", "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 303, response.text
    session_id = response.headers["location"].rsplit("/", 1)[-1]
    checkout = await services.stripe.retrieve_checkout_session(session_id)
    promo = (await sandbox_call("GET", f"{world.sandbox_url}/v1/promotion_codes?code=PAGE20")).json()["data"][0]
    assert [d["promotion_code"] for d in checkout["discounts"]] == [promo["id"]]
    assert checkout["allow_promotion_codes"] is not True
    assert (checkout["amount_subtotal"], checkout["total_details"]["amount_discount"], checkout["amount_total"]) == (
        29900,
        5980,
        23920,
    )
    await _pay(world, session_id)
    async with services.db.session() as session:
        customer = await get_by_external_id(session, "page-good")
    assert customer is not None
    [invoice] = await world.invoices(customer)
    assert (invoice.subtotal_cents, invoice.discount_cents, invoice.amount_cents, invoice.status) == (
        29900,
        5980,
        23920,
        "paid",
    )
    shown = text_of((await client.get(path)).text)
    assert "Subtotal THB 299.00 Discount −THB 59.80 Total THB 239.20" in shown.replace("\u00a0", " ")
    thai = text_of((await client.get(f"{path}?lang=th")).text)
    assert "ยอดก่อนหักส่วนลด" in thai and "ส่วนลด" in thai and "ยอดรวม" in thai


REFUSALS = [
    # (code made for the test, its terms, plan chosen, English reason)
    ("OTHERAPP", {"percent_off": Decimal("10"), "duration": "once", "app": "other"}, "pro", "cannot be used in Vega"),
    ("USDONLY", {"amount_off_cents": 500, "currency": "usd", "duration": "once"}, "pro", "another currency"),
    ("NOSUCHCODE", None, "pro", "We do not know the code NOSUCHCODE"),
]


@pytest.mark.parametrize(("code", "terms", "plan", "reason"), REFUSALS, ids=["other-app", "currency", "unknown"])
async def test_a_code_that_cannot_be_used_is_refused_on_our_page_and_nothing_is_made_at_stripe(
    client: httpx.AsyncClient,
    scene: Scene,
    world: World,
    services: Services,
    code: str,
    terms: dict[str, Any] | None,
    plan: str,
    reason: str,
) -> None:
    if terms is not None:
        terms = dict(terms)
        if terms.pop("app", None) == "other":
            terms["app_id"] = scene.other_app.id
        await _coupon(services, code, **terms)
    before = await _stripe_checkouts(world)
    user = f"refused-{code.lower()}"
    _, response = await _submit(client, scene, user, plan, code)
    await _assert_refused(response, world, services, user, before, code, plan, reason)


async def _assert_refused(
    response: httpx.Response,
    world: World,
    services: Services,
    user: str,
    before: int,
    code: str,
    plan: str,
    reason: str,
) -> None:
    assert response.status_code == 422, response.text
    assert reason in text_of(response.text)
    assert 'role="alert"' in response.text
    assert f'value="{code}"' in response.text  # the code stays in its field
    assert f'data-testid="plan-{plan}" data-selected="true"' in response.text  # the plan stays chosen
    assert await _stripe_checkouts(world) == before
    async with services.db.session() as session:
        customer = await get_by_external_id(session, user)
        assert customer is not None and customer.stripe_customer_id is None
        made = await session.scalar(
            select(func.count()).select_from(CheckoutSession).where(CheckoutSession.customer_id == customer.id)
        )
    assert made == 0


async def test_an_expired_code_is_refused(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    ends = utcnow() + timedelta(seconds=2)
    await _coupon(services, "SHORTLIVED", percent_off=Decimal("10"), duration="once", code_expires_at=ends)
    deadline = time.monotonic() + 10
    while utcnow() <= ends and time.monotonic() < deadline:
        await world.now()  # a round trip to the sandbox while the code's last second passes
    before = await _stripe_checkouts(world)
    _, response = await _submit(client, scene, "refused-expired", "pro", "SHORTLIVED")
    await _assert_refused(response, world, services, "refused-expired", before, "SHORTLIVED", "pro", "has expired")


async def test_an_exhausted_code_is_refused_with_the_count_read_from_stripe(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    await _coupon(services, "ONLYONCE", percent_off=Decimal("30"), duration="once", code_max_redemptions=1)
    _, first = await _submit(client, scene, "once-first", "vega-team", "ONLYONCE")
    assert first.status_code == 303, first.text
    await _pay(world, first.headers["location"].rsplit("/", 1)[-1])
    before = await _stripe_checkouts(world)
    _, response = await _submit(client, scene, "once-second", "pro", "ONLYONCE", lang="th")
    await _assert_refused(
        response, world, services, "once-second", before, "ONLYONCE", "pro", "รหัส ONLYONCE ถูกใช้ครบจำนวนครั้งแล้ว"
    )


async def test_a_code_deactivated_at_stripe_behind_our_back_is_refused(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    coupon = await _coupon(services, "DASHOFF", percent_off=Decimal("10"), duration="once")
    [(_, [code])] = [(c, codes) for c, codes in await _list(services) if c.id == coupon.id]
    url = f"{world.sandbox_url}/v1/promotion_codes/{code.stripe_promotion_code_id}"
    assert (await sandbox_call("POST", url, data={"active": "false"})).status_code == 200
    before = await _stripe_checkouts(world)
    _, response = await _submit(client, scene, "refused-dash", "pro", "DASHOFF")
    await _assert_refused(response, world, services, "refused-dash", before, "DASHOFF", "pro", "no longer active")


async def _list(services: Services) -> list[Any]:
    async with services.db.session() as session:
        return list(await promotions.list_coupons(session))


async def test_without_a_code_checkout_offers_no_code_field_of_its_own(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    await _coupon(services, "ANYAPP", percent_off=Decimal("5"), duration="once")
    _, response = await _submit(client, scene, "no-code", "pro", "")
    assert response.status_code == 303, response.text
    checkout = await services.stripe.retrieve_checkout_session(response.headers["location"].rsplit("/", 1)[-1])
    assert checkout["allow_promotion_codes"] is not True and checkout["discounts"] == []
