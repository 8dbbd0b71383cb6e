"""Plans in the admin: free and paid plans through the service, the guide's limits, friendly duplicates."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from payment.models import AuditLog, Plan
from payment.runtime import Services
from tests.admin.conftest import page_token
from tests.admin.test_apps import RAW_DB_WORDS

FREE = {"slug": "free", "name": "Aquoris Free", "price_cents": "0", "currency": "thb", "interval": "month",
        "stripe_price_id": "", "features": "Core features\nCommunity support", "sort_order": "0", "active": "y",
        "app_id": "", "description": ""}
PRO = {**FREE, "slug": "pro", "name": "Aquoris PRO", "price_cents": "29900", "stripe_price_id": "price_1ProTHB",
       "features": "Everything in Free\n\nPriority support\n", "sort_order": "10"}


async def post_plan(client: httpx.AsyncClient, data: dict[str, str], path: str = "/admin/plan/create"
                    ) -> httpx.Response:
    token = await page_token(client, path)
    return await client.post(path, data={**data, "csrf_token": token, "save": "Save"})


async def plan(services: Services, slug: str) -> Plan:
    async with services.db.session() as session:
        return (await session.execute(select(Plan).where(Plan.slug == slug))).scalar_one()


async def test_create_a_free_and_a_paid_plan(admin: httpx.AsyncClient, admin_services: Services,
                                             root_admin: int) -> None:
    assert (await post_plan(admin, FREE)).status_code == 302
    assert (await post_plan(admin, PRO)).status_code == 302
    free, pro = await plan(admin_services, "free"), await plan(admin_services, "pro")
    assert (free.price_cents, free.stripe_price_id) == (0, None)
    assert (pro.price_cents, pro.stripe_price_id, pro.features) == (29900, "price_1ProTHB",
                                                                   ["Everything in Free", "Priority support"])
    listing = await admin.get("/admin/plan/list")
    assert "THB 299.00" in listing.text and "Free" in listing.text
    async with admin_services.db.session() as session:
        created = (await session.execute(select(AuditLog).where(AuditLog.action == "plan.created",
                                                                AuditLog.actor == f"admin:{root_admin}"))).scalars()
        assert {row.details["slug"] for row in created} >= {"free", "pro"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"slug": "p" * 129}, "Slug must be at most 128 characters."),
    ({"name": "n" * 1025}, "Name must be at most 1024 characters."),
    ({"price_cents": "-1"}, "Price must be 0 or more (in cents)."),
    ({"price_cents": "abc"}, "Not a valid integer value."),
    ({"stripe_price_id": ""}, "A paid plan needs its Stripe Price ID (price_...)."),
    ({"price_cents": "0"}, "A free plan has no Stripe Price ID; leave it empty."),
    ({"stripe_price_id": "prod_123"}, "Stripe Price IDs look like price_1AbC..."),
    ({"currency": "eur"}, "Not a valid choice."),
    ({"price_cents": str(10**20)}, "Price is too large"),
    ({"sort_order": str(10**19)}, "Sort order must be between"),
])
async def test_the_guides_limits_give_clear_errors(admin: httpx.AsyncClient, changes: dict[str, str],
                                                   message: str) -> None:
    response = await post_plan(admin, {**PRO, "slug": "limits", "stripe_price_id": "price_limits", **changes})
    assert response.status_code == 400
    assert message in response.text
    assert not any(word in response.text for word in RAW_DB_WORDS)


async def test_duplicates_are_friendly(admin: httpx.AsyncClient) -> None:
    assert (await post_plan(admin, {**PRO, "slug": "dup", "stripe_price_id": "price_dup"})).status_code == 302
    same_slug = await post_plan(admin, {**PRO, "slug": "dup", "stripe_price_id": "price_other"})
    assert same_slug.status_code == 400 and "A plan with slug “dup” already exists." in same_slug.text
    same_price = await post_plan(admin, {**PRO, "slug": "dup-2", "stripe_price_id": "price_dup"})
    assert same_price.status_code == 400 and "is already used by plan “dup”" in same_price.text
    assert not any(word in same_slug.text + same_price.text for word in RAW_DB_WORDS)


async def test_edit_scope_and_deactivate(admin: httpx.AsyncClient, admin_services: Services) -> None:
    from tests.support.factories import create_app

    async with admin_services.db.transaction() as session:
        app, _ = await create_app(session, slug="scope-app", name="Scope App")
    await post_plan(admin, {**PRO, "slug": "scoped", "stripe_price_id": "price_scoped"})
    scoped = await plan(admin_services, "scoped")
    edit = f"/admin/plan/edit/{scoped.id}"
    response = await post_plan(admin, {**PRO, "slug": "scoped", "stripe_price_id": "price_scoped", "name": "Scoped",
                                       "app_id": str(app.id), "interval": "year"}, edit)
    assert response.status_code == 302
    scoped = await plan(admin_services, "scoped")
    assert (scoped.app_id, scoped.interval, scoped.name) == (app.id, "year", "Scoped")
    token = await page_token(admin, "/admin/plan/list")
    assert (await admin.post(f"/admin/plan/{scoped.id}/set-active",
                             data={"active": "0", "csrf_token": token})).status_code == 303
    assert not (await plan(admin_services, "scoped")).active
    async with admin_services.db.session() as session:
        actions = (await session.execute(select(AuditLog.action).where(
            AuditLog.entity_type == "plan", AuditLog.entity_id == str(scoped.id)).order_by(AuditLog.id))).scalars()
        assert list(actions) == ["plan.created", "plan.updated", "plan.deactivated"]
