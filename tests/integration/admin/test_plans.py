"""Plans in the admin: free and paid plans through the service, the guide's limits, friendly duplicates, and each
paid plan's Stripe price checked (or created) in the Stripe sandbox on save."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from payment.config import Settings
from payment.models import AuditLog, Plan
from payment.runtime import Services
from tests.integration.admin.conftest import page_token
from tests.integration.admin.test_apps import RAW_DB_WORDS
from tests.support.app import ThreadServer
from tests.support.db import settings_for
from tests.support.stripe import stripe_price

FREE = {
    "slug": "free",
    "name": "Aquoris Free",
    "price": "0",
    "currency": "thb",
    "interval": "month",
    "stripe_price_id": "",
    "features": "Core features\nCommunity support",
    "sort_order": "0",
    "active": "y",
    "app_id": "",
    "description": "",
}
PRO = {
    **FREE,
    "slug": "pro",
    "name": "Aquoris PRO",
    "price": "299.00",
    "stripe_price_id": "",
    "features": "Everything in Free\n\nPriority support\n",
    "sort_order": "10",
}


@pytest.fixture(scope="module")
def admin_settings(database_url: str, sandbox_server: ThreadServer) -> Settings:
    """This module's admin talks to the Stripe sandbox."""
    return settings_for(database_url, stripe_api_base=sandbox_server.url)


async def post_plan(
    client: httpx.AsyncClient, data: dict[str, str], path: str = "/admin/plan/create"
) -> httpx.Response:
    token = await page_token(client, path)
    return await client.post(path, data={**data, "csrf_token": token, "save": "Save"})


async def plan(services: Services, slug: str) -> Plan:
    async with services.db.session() as session:
        return (await session.execute(select(Plan).where(Plan.slug == slug))).scalar_one()


async def test_create_a_free_and_a_paid_plan(
    admin: httpx.AsyncClient, admin_services: Services, root_admin: int
) -> None:
    price_id = await stripe_price(admin_services.stripe)
    assert (await post_plan(admin, FREE)).status_code == 302
    assert (await post_plan(admin, {**PRO, "stripe_price_id": price_id})).status_code == 302
    free, pro = await plan(admin_services, "free"), await plan(admin_services, "pro")
    assert (free.price_cents, free.stripe_price_id) == (0, None)
    assert (pro.price_cents, pro.stripe_price_id, pro.features) == (
        29900,
        price_id,
        ["Everything in Free", "Priority support"],
    )
    listing = await admin.get("/admin/plan/list")
    assert "THB 299.00" in listing.text and "Free" in listing.text
    async with admin_services.db.session() as session:
        created = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "plan.created", AuditLog.actor == f"admin:{root_admin}")
            )
        ).scalars()
        assert {row.details["slug"] for row in created} >= {"free", "pro"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "p" * 129}, "Slug must be at most 128 characters."),
        ({"name": "n" * 1025}, "Name must be at most 1024 characters."),
        ({"price": "-1"}, "Price must be 0 or more."),
        ({"price": "abc"}, "Enter the price as a number, e.g. 299.00"),
        ({"price": "2.999"}, "Prices have at most 2 decimals."),
        ({"stripe_price_id": ""}, "A paid plan needs its Stripe Price ID (price_...)."),
        ({"price": "0"}, "A free plan has no Stripe Price ID; leave it empty."),
        ({"stripe_price_id": "prod_123"}, "Stripe Price IDs look like price_1AbC..."),
        ({"currency": "eur"}, "Not a valid choice."),
        ({"price": str(10**20)}, "Price is too large"),
        ({"sort_order": str(10**19)}, "Sort order must be between"),
    ],
)
async def test_the_guides_limits_give_clear_errors(
    admin: httpx.AsyncClient, changes: dict[str, str], message: str
) -> None:
    response = await post_plan(admin, {**PRO, "slug": "limits", "stripe_price_id": "price_limits", **changes})
    assert response.status_code == 400
    assert message in response.text
    assert not any(word in response.text for word in RAW_DB_WORDS)


async def test_duplicates_are_friendly(admin: httpx.AsyncClient, admin_services: Services) -> None:
    price_dup, price_other = await stripe_price(admin_services.stripe), await stripe_price(admin_services.stripe)
    assert (await post_plan(admin, {**PRO, "slug": "dup", "stripe_price_id": price_dup})).status_code == 302
    same_slug = await post_plan(admin, {**PRO, "slug": "dup", "stripe_price_id": price_other})
    assert same_slug.status_code == 400 and "A plan with slug “dup” already exists." in same_slug.text
    same_price = await post_plan(admin, {**PRO, "slug": "dup-2", "stripe_price_id": price_dup})
    assert same_price.status_code == 400 and "is already used by plan “dup”" in same_price.text
    assert not any(word in same_slug.text + same_price.text for word in RAW_DB_WORDS)


async def test_edit_scope_and_deactivate(admin: httpx.AsyncClient, admin_services: Services) -> None:
    from tests.support.factories import create_app

    async with admin_services.db.transaction() as session:
        app, _ = await create_app(session, slug="scope-app", name="Scope App")
    monthly, yearly = (
        await stripe_price(admin_services.stripe),
        await stripe_price(admin_services.stripe, interval="year"),
    )
    await post_plan(admin, {**PRO, "slug": "scoped", "stripe_price_id": monthly})
    scoped = await plan(admin_services, "scoped")
    edit = f"/admin/plan/edit/{scoped.id}"
    edit_page = await admin.get(edit)
    assert 'value="299.00"' in edit_page.text  # money shown in major units, as typed
    response = await post_plan(
        admin,
        {
            **PRO,
            "slug": "scoped",
            "stripe_price_id": yearly,
            "name": "Scoped",
            "app_id": str(app.id),
            "interval": "year",
        },
        edit,
    )
    assert response.status_code == 302
    scoped = await plan(admin_services, "scoped")
    assert (scoped.app_id, scoped.interval, scoped.name) == (app.id, "year", "Scoped")
    token = await page_token(admin, "/admin/plan/list")
    assert (
        await admin.post(f"/admin/plan/{scoped.id}/set-active", data={"active": "0", "csrf_token": token})
    ).status_code == 303
    assert not (await plan(admin_services, "scoped")).active
    async with admin_services.db.session() as session:
        actions = (
            await session.execute(
                select(AuditLog.action)
                .where(AuditLog.entity_type == "plan", AuditLog.entity_id == str(scoped.id))
                .order_by(AuditLog.id)
            )
        ).scalars()
        assert list(actions) == ["plan.created", "plan.updated", "plan.deactivated"]


@pytest.mark.parametrize(
    ("price", "plan", "message"),
    [
        (None, {"stripe_price_id": "price_nope123"}, "Stripe has no price price_nope123"),
        (
            {"amount": 990, "currency": "usd"},
            {"price": "123.45", "currency": "usd"},
            "it charges USD 9.90, the plan shows USD 123.45",
        ),
        ({"currency": "usd"}, {}, "it is in USD, the plan in THB"),
        ({"interval": "year"}, {}, "it bills every year, the plan every month"),
        ({"interval": None}, {}, "it is a one-time price, not a recurring one"),
        ({"active": False}, {}, "it is archived (inactive) in Stripe"),
    ],
)
async def test_a_price_that_does_not_fit_the_plan_is_a_field_error(
    admin: httpx.AsyncClient,
    admin_services: Services,
    price: dict[str, object] | None,
    plan: dict[str, str],
    message: str,
) -> None:
    fields = {**PRO, "slug": "misfit", **plan}
    if price is not None:
        fields["stripe_price_id"] = await stripe_price(admin_services.stripe, **price)  # type: ignore[arg-type]
    response = await post_plan(admin, fields)
    assert response.status_code == 400 and message in response.text
    assert "is-invalid" in response.text or "stripe_price_id" in response.text
    async with admin_services.db.session() as session:
        assert (await session.execute(select(Plan).where(Plan.slug == "misfit"))).scalar_one_or_none() is None


async def test_the_admin_can_have_the_product_and_price_created_in_stripe(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    fields = {
        **PRO,
        "slug": "made-here",
        "name": "Made Here",
        "price": "123.45",
        "currency": "usd",
        "interval": "year",
        "create_in_stripe": "y",
    }
    response = await post_plan(admin, fields)
    assert response.status_code == 302, response.text
    made = await plan(admin_services, "made-here")
    assert made.stripe_price_id is not None
    price = await admin_services.stripe.retrieve_price(made.stripe_price_id)
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"], price["active"]) == (
        12345,
        "usd",
        "year",
        True,
    )
    product = await admin_services.stripe.client.v1.products.retrieve_async(str(price["product"]))
    assert product["name"] == "Made Here"
    both = await post_plan(admin, {**fields, "slug": "both", "stripe_price_id": made.stripe_price_id})
    assert both.status_code == 400 and "Either enter a Stripe Price ID or tick" in both.text


async def test_a_price_that_drifts_in_stripe_shows_a_warning_on_the_list(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    price_id = await stripe_price(admin_services.stripe)
    assert (await post_plan(admin, {**PRO, "slug": "drifting", "stripe_price_id": price_id})).status_code == 302
    # archived in Stripe's dashboard
    await admin_services.stripe.client.v1.prices.update_async(price_id, params={"active": False})
    token = await page_token(admin, "/admin/plan/list")
    checked = await admin.post("/admin/plan/check-prices", data={"csrf_token": token})
    assert checked.status_code == 303
    listing = await admin.get("/admin/plan/list")
    assert 'plan-price-drift" style="max-width: 14rem" data-plan-slug="drifting"' in listing.text
    assert "it is archived (inactive) in Stripe" in listing.text
    assert "no longer match their Stripe price" in listing.text
