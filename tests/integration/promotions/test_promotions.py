"""Coupons and promotion codes: created by an admin and mirrored at Stripe, redeemed at Checkout (the sandbox), the
discount stored on invoices and subscriptions as Stripe computes it, on the tax invoice, and MRR after discount
recomputed here independently of the dashboard's SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from payment.billing.customers import get_by_external_id
from payment.dashboard import metrics
from payment.errors import Conflict, ValidationError
from payment.models import AuditLog, Coupon, Customer, Plan, PromotionCode, Subscription, utcnow
from payment.promotions import service as promotions
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, csrf_of, open_billing
from tests.support.app import ThreadServer
from tests.support.stripe import World, reset_sandbox, sandbox_call

PRO = 29900
_n = count(1)


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services)


@pytest.fixture
def world(services: Services, sandbox_server: ThreadServer, scene: Scene) -> World:
    return World(services, sandbox_server.url)


async def _coupon(services: Services, code: str, **terms: Any) -> Coupon:
    data = promotions.CouponInput(name=f"Offer {code}", code=code, **terms)
    return await promotions.create_coupon(
        services.db, services.stripe, data, request_key=f"test-{code}-{next(_n)}", actor="test"
    )


async def _subscribe_with_code(
    client: httpx.AsyncClient, scene: Scene, world: World, user: str, code: str
) -> tuple[Customer, dict[str, Any]]:
    path, _ = await open_billing(client, scene, user)
    page = await client.get(path)
    form = {"plan": "pro", "promotion_code": code, "csrf": csrf_of(page.text), "lang": "en"}
    response = await client.post(f"{path}/subscribe", data=form)
    assert response.status_code == 303, response.text
    session_id = response.headers["location"].rsplit("/", 1)[-1]
    checkout = await world.services.stripe.retrieve_checkout_session(session_id)
    assert len(checkout["discounts"]) == 1  # typed on our page, checked, carried to Checkout
    seen = len(await world.events())
    paid = await world.control("POST", f"checkout_sessions/{session_id}/pay")
    await world.apply_all(await world.events(after=seen))
    async with world.services.db.session() as session:
        customer = await get_by_external_id(session, user)
    assert customer is not None
    return customer, dict(paid["subscription"])


async def _renew(world: World) -> None:
    seen = len(await world.events())
    await world.advance(31)
    await world.apply_all(await world.events(after=seen))


@pytest.mark.parametrize(
    ("terms", "invoiced"),
    [
        # 20% of 299.00 = 59.80 off for 2 months (the first invoice and one renewal), then the full price
        (
            {"percent_off": Decimal("20"), "duration": "repeating", "duration_in_months": 2},
            [(PRO, 5980, 23920), (PRO, 5980, 23920), (PRO, 0, PRO)],
        ),
        # 100.00 THB off the first payment only
        (
            {"amount_off_cents": 10000, "currency": "thb", "duration": "once"},
            [(PRO, 10000, 19900), (PRO, 0, PRO), (PRO, 0, PRO)],
        ),
        # 12.5% of 299.00 = 37.375, rounded half up by Stripe to 37.38, on every invoice
        ({"percent_off": Decimal("12.5"), "duration": "forever"}, [(PRO, 3738, 26162)] * 3),
    ],
    ids=["percent-repeating", "amount-once", "percent-forever"],
)
async def test_a_code_at_checkout_discounts_the_invoices_its_coupon_covers(
    client: httpx.AsyncClient,
    scene: Scene,
    world: World,
    services: Services,
    terms: dict[str, Any],
    invoiced: list[tuple[int, int, int]],
) -> None:
    code = f"SAVE{next(_n)}"
    coupon = await _coupon(services, code, **terms)
    customer, sub = await _subscribe_with_code(client, scene, world, f"promo-{code}", code.lower())
    for _ in range(len(invoiced) - 1):
        await _renew(world)
    invoices = await world.invoices(customer)
    assert [(i.subtotal_cents, i.discount_cents, i.amount_cents) for i in invoices] == invoiced
    assert all(i.status == "paid" for i in invoices)
    stripe_invoices = (await services.stripe.list_invoices({"subscription": sub["id"], "limit": 10}))["data"]
    assert sorted(int(i["amount_paid"]) for i in stripe_invoices) == sorted(t for _, _, t in invoiced)
    stripe_coupon = (await sandbox_call("GET", f"{world.sandbox_url}/v1/coupons/{coupon.stripe_coupon_id}")).json()
    assert stripe_coupon["times_redeemed"] == 1


async def test_mrr_after_discount_matches_an_independent_sum(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    forever = f"FOREVER{next(_n)}"
    await _coupon(services, forever, percent_off=Decimal("15"), duration="forever")
    fixed = f"FIXED{next(_n)}"
    await _coupon(services, fixed, amount_off_cents=5000, currency="thb", duration="repeating", duration_in_months=6)
    await _subscribe_with_code(client, scene, world, f"mrr-{forever}", forever)
    await _subscribe_with_code(client, scene, world, f"mrr-{fixed}", fixed)
    async with services.db.session() as session:
        rows = (
            await session.execute(
                select(Subscription, Plan)
                .join(Plan, Plan.id == Subscription.plan_id)
                .where(Subscription.status == "active", Subscription.source == "stripe", Plan.currency == "thb")
            )
        ).all()
        result = await metrics.mrr(session, now=utcnow())
    expected = Fraction(0)
    discounted = 0
    for sub, plan in rows:
        value = Fraction(plan.price_cents, 12 if plan.interval == "year" else 1)
        if sub.discount_percent_off is not None:
            value -= value * Fraction(sub.discount_percent_off) / 100
            discounted += 1
        elif sub.discount_amount_off_cents is not None:
            value -= Fraction(
                min(sub.discount_amount_off_cents, plan.price_cents), 12 if plan.interval == "year" else 1
            )
            discounted += 1
        expected += value
    assert discounted >= 2
    exact = Decimal(expected.numerator) / Decimal(expected.denominator)
    assert result.amounts["thb"] == int(exact.quantize(Decimal(1), ROUND_HALF_UP))
    assert result.discounts["thb"] >= 4485 + 5000  # 15% of 299.00 and 50.00
    assert "after discount" in result.formula


async def test_a_deactivated_code_no_longer_works_and_everything_is_audited(
    client: httpx.AsyncClient, scene: Scene, world: World, services: Services
) -> None:
    code = f"STOP{next(_n)}"
    coupon = await _coupon(services, code, percent_off=Decimal("10"), duration="once")
    async with services.db.session() as session:
        row = await session.scalar(select(PromotionCode).where(PromotionCode.coupon_id == coupon.id))
    assert row is not None and row.active
    await promotions.deactivate_code(services.db, services.stripe, row.id, actor="test")
    url = f"{world.sandbox_url}/v1/promotion_codes/{row.stripe_promotion_code_id}"
    assert (await sandbox_call("GET", url)).json()["active"] is False
    path, _ = await open_billing(client, scene, f"late-{code}")
    page = await client.get(path)
    form = {"plan": "pro", "promotion_code": code, "csrf": csrf_of(page.text), "lang": "en"}
    refused = await client.post(f"{path}/subscribe", data=form)
    assert refused.status_code == 422 and f"The code {code} is no longer active." in refused.text
    async with services.db.session() as session:
        actions = (
            await session.scalars(
                select(AuditLog.action).where(
                    AuditLog.entity_type.in_(("coupon", "promotion_code")),
                    AuditLog.entity_id.in_((str(coupon.id), str(row.id))),
                )
            )
        ).all()
    assert sorted(actions) == ["coupon.created", "promotion_code.deactivated"]


async def test_bad_coupons_are_refused_with_the_field_named(services: Services) -> None:
    with pytest.raises(ValidationError) as both:
        await _coupon(
            services, "BOTH", percent_off=Decimal("10"), amount_off_cents=100, currency="thb", duration="once"
        )
    assert both.value.field == "percent_off"
    with pytest.raises(ValidationError) as months:
        await _coupon(services, "MONTHS", percent_off=Decimal("10"), duration="repeating")
    assert months.value.field == "duration_in_months"
    with pytest.raises(ValidationError) as past:
        await _coupon(
            services, "PAST", percent_off=Decimal("10"), duration="once", redeem_by=utcnow() - timedelta(days=1)
        )
    assert past.value.field == "redeem_by"
    await _coupon(services, "TAKEN", percent_off=Decimal("10"), duration="once")
    with pytest.raises(Conflict):
        await _coupon(services, "taken", percent_off=Decimal("5"), duration="once")
    with pytest.raises(ValidationError):
        promotions.parse_percent("120")
