"""`payment dev`: the demo app returns to a small page the dev server serves, so "Back to Vega" lands somewhere; it
sells a small catalogue (monthly and yearly Pro of one product, Team with a trial) and the code VEGA20 works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from payment.apps.service import get_by_slug as app_by_slug
from payment.bootstrap import create_app
from payment.devserver import add_demo_pages
from payment.models import Coupon, Plan, PromotionCode
from payment.promotions import redeem
from payment.runtime import Services
from payment.seed import seed_demo
from payment.subscriptions import changes
from tests.support import factories
from tests.support.app import ThreadServer, asgi_client, running_services
from tests.support.db import settings_for
from tests.support.stripe import reset_sandbox


@pytest.fixture(scope="module")
async def services(database_url: str, sandbox_server: ThreadServer) -> AsyncIterator[Services]:
    """`payment dev`'s services on this module's database and a sandbox reset once for the module (its state and
    the database's go together, as in the dev data directory)."""
    reset_sandbox(sandbox_server.url)
    settings = settings_for(database_url, stripe_api_base=sandbox_server.url, base_url="http://127.0.0.1:8123")
    async with running_services(settings) as services:
        yield services


async def test_the_demo_apps_return_url_is_served_by_the_dev_server(services: Services) -> None:
    await seed_demo(services.db, services.settings, services.stripe)
    async with services.db.session() as session:
        vega = await app_by_slug(session, "vega")
    assert vega is not None and vega.return_url == "http://127.0.0.1:8123/dev/vega/settings"

    app = create_app(services=services)
    add_demo_pages(app)
    async with asgi_client(app, base_url="http://127.0.0.1:8123") as client:
        page = await client.get("/dev/vega/settings")
    assert page.status_code == 200 and "You are back in the demo app" in page.text


async def test_the_demo_sells_a_catalogue_to_change_between_and_a_working_code_on_every_start(
    services: Services,
) -> None:
    first = await seed_demo(services.db, services.settings, services.stripe)
    second = await seed_demo(services.db, services.settings, services.stripe)  # the next start of `payment dev`
    assert (first.plans, first.promotion_code) == (["free", "pro", "pro-yearly", "team"], "VEGA20")
    assert second == first

    async with services.db.transaction() as session:
        vega = await app_by_slug(session, "vega")
        assert vega is not None
        plans = {p.slug: p for p in (await session.scalars(select(Plan))).all()}
        coupons = (await session.scalars(select(Coupon))).all()
        codes = (await session.scalars(select(PromotionCode))).all()
        customer = await factories.create_customer(session)
    described = {
        slug: (p.name, p.price_cents, p.currency, p.interval, p.trial_days, p.app_id) for slug, p in plans.items()
    }
    assert described == {
        "free": ("Aquoris Free", 0, "thb", "month", 0, None),
        "pro": ("Pro", 29900, "thb", "month", 0, vega.id),
        "pro-yearly": ("Pro yearly", 299000, "thb", "year", 0, vega.id),
        "team": ("Team", 99000, "thb", "month", 14, vega.id),
    }

    # each paid plan has its own live price at the sandbox, monthly and yearly Pro one product
    prices = {
        slug: await services.stripe.retrieve_price(str(p.stripe_price_id))
        for slug, p in plans.items()
        if slug != "free"
    }
    assert {slug: (p["unit_amount"], p["recurring"]["interval"]) for slug, p in prices.items()} == {
        "pro": (29900, "month"),
        "pro-yearly": (299000, "year"),
        "team": (99000, "month"),
    }
    assert prices["pro"]["product"] == prices["pro-yearly"]["product"] != prices["team"]["product"]
    pro, yearly, team = plans["pro"], plans["pro-yearly"], plans["team"]
    assert changes.refusal(vega, pro, yearly) is None and changes.refusal(vega, yearly, pro) is None
    assert changes.refusal(vega, pro, team) is None

    # the code: one coupon, made at Stripe as an admin's form makes it, accepted for the demo app's plans
    assert [(c.name, c.percent_off, c.duration, c.app_id) for c in coupons] == [
        ("Vega 20% off", Decimal(20), "once", vega.id)
    ]
    assert [(c.code, c.active) for c in codes] == [("VEGA20", True)]
    stripe_code = await services.stripe.retrieve_promotion_code(str(codes[0].stripe_promotion_code_id))
    assert stripe_code["code"] == "VEGA20" and stripe_code["active"] is True
    for slug in ("pro", "pro-yearly", "team"):
        accepted = await redeem.check_code(
            services.db,
            services.stripe,
            app_id=vega.id,
            customer_id=customer.id,
            stripe_customer_id=None,
            plan_slug=slug,
            code="vega20",
        )
        assert accepted.code == "VEGA20"
