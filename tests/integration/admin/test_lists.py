"""The read-only lists: filters in the query string, exact totals, keyset pages for infinite scroll."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from payment.models import Plan, Subscription
from payment.runtime import Services
from tests.integration.admin.test_apps import RAW_DB_WORDS
from tests.support import factories
from tests.support.narrow import present

ROW_ID = re.compile(r'<tr data-row-id="(\d+)"')


@pytest.fixture(scope="module")
async def seeded(admin_services: Services) -> dict[str, int]:
    """130 subscriptions (90 active, 40 canceled) over two plans, with invoices and a refund for one customer."""
    from payment.models import Refund

    async with admin_services.db.transaction() as session:
        basic = await factories.create_plan(session, slug="basic", name="Basic")
        gold = await factories.create_plan(session, slug="gold", name="Gold", price_cents=99900)
        first = None
        for n in range(130):
            customer = await factories.create_customer(
                session,
                external_user_id=f"ext-{n:03}",
                email=f"person{n:03}@example.com",
                stripe_customer_id=f"cus_{n:03}",
            )
            first = first or customer
            extra: dict[str, Any] = {} if n % 2 else {"stripe_subscription_id": None}
            await factories.create_subscription(
                session,
                customer,
                gold if n % 3 == 0 else basic,
                status="active" if n < 90 else "canceled",
                source="stripe" if n % 2 else "manual",
                **extra,
            )
        assert first is not None
        sub = (await session.execute(select(Subscription).where(Subscription.customer_id == first.id))).scalar_one()
        invoice = await factories.create_invoice(session, first, subscription=sub, amount_cents=29900)
        session.add(
            Refund(
                invoice_id=invoice.id,
                amount_cents=10000,
                currency="thb",
                reason="goodwill",
                status="failed",
                created_by="admin:1",
                also_cancel=True,
                cancel_outcome="failed",
                cancel_error="Stripe said no",
            )
        )
        return {"basic": basic.id, "gold": gold.id, "first_customer": first.id, "invoice": invoice.id}


def ids(html: str) -> list[int]:
    return [int(x) for x in ROW_ID.findall(html)]


async def test_subscriptions_filtered_with_exact_count_and_keyset_pages(
    admin: httpx.AsyncClient, admin_services: Services, seeded: dict[str, int]
) -> None:
    first = await admin.get("/admin/subscription/list?status=active")
    assert first.status_code == 200
    assert 'data-total-count="90"' in first.text
    page_ids = ids(first.text)
    assert len(page_ids) == 50 and page_ids == sorted(page_ids, reverse=True)
    next_url = re.search(r'data-next-url="([^"]+)"', first.text)
    assert next_url is not None
    seen = list(page_ids)
    url = next_url.group(1).replace("&amp;", "&")
    while url:
        more = await admin.get(url)
        assert more.status_code == 200 and "<html" not in more.text  # a fragment of rows only
        seen += ids(more.text)
        url = more.headers["x-next-page"]
    async with admin_services.db.session() as session:
        expected = (
            (
                await session.execute(
                    select(Subscription.id).where(Subscription.status == "active").order_by(Subscription.id.desc())
                )
            )
            .scalars()
            .all()
        )
    assert seen == list(expected)


async def test_subscription_filters_combine(
    admin: httpx.AsyncClient, admin_services: Services, seeded: dict[str, int]
) -> None:
    page = await admin.get(f"/admin/subscription/list?status=canceled&plan={seeded['gold']}&source=manual")
    async with admin_services.db.session() as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(Subscription)
                .where(
                    Subscription.status == "canceled",
                    Subscription.plan_id == seeded["gold"],
                    Subscription.source == "manual",
                )
            )
        ).scalar_one()
    assert f'data-total-count="{count}"' in page.text and len(ids(page.text)) == count
    assert "End of list" in page.text
    nonsense = await admin.get("/admin/subscription/list?status=nonsense&plan=abc&after=-5&pageSize=x")
    assert nonsense.status_code == 200 and 'data-total-count="130"' in nonsense.text


async def test_customer_search_by_external_id_email_or_stripe_id(
    admin: httpx.AsyncClient, seeded: dict[str, int]
) -> None:
    for term in ("ext-007", "PERSON007@example.com", "cus_007"):
        page = await admin.get("/admin/customer/list", params={"q": term})
        assert 'data-total-count="1"' in page.text, term
        assert "person007@example.com" in page.text
    wildcard = await admin.get("/admin/customer/list", params={"q": "%"})
    assert 'data-total-count="0"' in wildcard.text


async def test_customer_detail_shows_subscriptions_invoices_refunds_and_history(
    admin: httpx.AsyncClient, seeded: dict[str, int]
) -> None:
    page = await admin.get(f"/admin/customer/details/{seeded['first_customer']}")
    assert page.status_code == 200
    assert "ext-000" in page.text and "Gold" in page.text
    assert "THB 299.00" in page.text and "THB 100.00" in page.text
    assert "failed" in page.text and "Stripe said no" in page.text
    assert (await admin.get("/admin/customer/details/999999")).status_code == 404


async def test_invoices_and_refunds_are_read_only_lists(admin: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    invoices = await admin.get("/admin/invoice/list?status=paid&currency=thb")
    assert 'data-total-count="1"' in invoices.text and "THB 299.00" in invoices.text
    refunds = await admin.get("/admin/refund/list?status=failed")
    assert 'data-total-count="1"' in refunds.text and "goodwill" in refunds.text
    for identity in ("subscription", "invoice", "refund", "audit-log", "customer"):
        assert (await admin.get(f"/admin/{identity}/create")).status_code == 403
        assert (await admin.get(f"/admin/{identity}/edit/1")).status_code == 403
        assert (await admin.get(f"/admin/{identity}/export/csv")).status_code == 403


async def test_audit_log_filters(admin: httpx.AsyncClient, root_admin: int, seeded: dict[str, int]) -> None:
    page = await admin.get("/admin/audit-log/list", params={"action": "plan.created", "actor": "test"})
    assert 'data-total-count="2"' in page.text
    assert '"slug": "basic"' in page.text.replace("&#34;", '"') and 'data-action="plan.created"' in page.text
    signed_in = await admin.get("/admin/audit-log/list", params={"actor": f"admin:{root_admin}"})
    assert 'data-action="admin.signed_in"' in signed_in.text
    assert "root@aquoris.test" in signed_in.text  # the actor's email beside its id


async def test_concurrent_duplicate_saves_never_show_a_database_error(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    from tests.integration.admin.conftest import page_token

    token = await page_token(admin, "/admin/plan/create")
    data = {
        "slug": "race",
        "name": "Race",
        "price": "0",
        "currency": "thb",
        "interval": "month",
        "stripe_price_id": "",
        "features": "",
        "sort_order": "0",
        "active": "y",
        "app_id": "",
        "description": "",
        "csrf_token": token,
        "save": "Save",
    }
    responses = await asyncio.gather(*(admin.post("/admin/plan/create", data=data) for _ in range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(302) == 1 and codes.count(400) == 5
    for response in responses:
        assert not any(word in response.text for word in RAW_DB_WORDS)
    async with admin_services.db.session() as session:
        assert (
            await session.execute(select(func.count()).select_from(Plan).where(Plan.slug == "race"))
        ).scalar_one() == 1


async def test_customer_detail_hosts_the_operations_buttons(admin_services: Services, seeded: dict[str, int]) -> None:
    """Other admin features plug their buttons in through these includes, with these context variables."""
    from jinja2 import ChoiceLoader, DictLoader
    from starlette.applications import Starlette

    from admin_views.setup import mount_admin
    from tests.integration.admin.conftest import sign_in
    from tests.support.app import asgi_client

    app = Starlette()
    app.state.services = admin_services
    mounted = mount_admin(app, admin_services)
    mounted.templates.env.loader = ChoiceLoader(
        [
            DictLoader(
                {
                    "operations/customer_actions.html": (
                        "<p id=ca>customer={{ customer.id }} live={{ live_subscription.id }}</p>"
                    ),
                    "operations/subscription_actions.html": "<i class=sa>sub={{ subscription.id }}</i>",
                    "operations/invoice_actions.html": "<i class=ia>invoice={{ invoice.id }}</i>",
                }
            ),
            present(mounted.templates.env.loader),
        ]
    )
    async with asgi_client(app) as client:
        assert (await sign_in(client)).status_code == 302
        page = await client.get(f"/admin/customer/details/{seeded['first_customer']}")
    async with admin_services.db.session() as session:
        sub_id = (
            await session.execute(select(Subscription.id).where(Subscription.customer_id == seeded["first_customer"]))
        ).scalar_one()
    assert f"customer={seeded['first_customer']} live={sub_id}" in page.text
    assert f"sub={sub_id}" in page.text and f"invoice={seeded['invoice']}" in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/customer/details/abc",
        "/admin/subscription/details/abc",
        "/admin/plan/edit/abc",
        "/admin/app/details/99999999999999999999",
        "/admin/subscription/list?after=99999999999999999999999",
        "/admin/customer/list?q=" + "x" * 5000,
    ],
)
async def test_odd_urls_never_show_a_database_error(admin: httpx.AsyncClient, path: str) -> None:
    response = await admin.get(path)
    assert response.status_code in (200, 400, 404)
    assert not any(word in response.text for word in RAW_DB_WORDS)


async def test_detail_pages_render_and_never_show_secrets(
    admin: httpx.AsyncClient, admin_services: Services, root_admin: int, seeded: dict[str, int]
) -> None:
    from payment.models import AdminUser, App, Invoice, Refund

    async with admin_services.db.transaction() as session:
        app, _ = await factories.create_app(session, slug="detail-app")
        refund_id = (await session.execute(select(Refund.id))).scalars().first()
        sub_id = (await session.execute(select(Subscription.id))).scalars().first()
        invoice_id = (await session.execute(select(Invoice.id))).scalars().first()
        secrets = [
            app.api_key_encrypted,
            app.api_key_hash.hex(),
            (await session.get(AdminUser, root_admin)).password_hash,  # type: ignore[union-attr]
        ]
    assert isinstance(app, App)
    for path in (
        f"/admin/app/details/{app.id}",
        f"/admin/admin-user/details/{root_admin}",
        f"/admin/subscription/details/{sub_id}",
        f"/admin/invoice/details/{invoice_id}",
        f"/admin/refund/details/{refund_id}",
        f"/admin/plan/details/{seeded['gold']}",
    ):
        page = await admin.get(path)
        assert page.status_code == 200, path
        assert not any(secret in page.text for secret in secrets), path


async def test_subscription_detail_page_offers_the_billing_actions(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    async with admin_services.db.transaction() as session:
        customer = await factories.create_customer(session)
        plan = await factories.create_plan(session, slug="detail-actions-plan")
        sub = await factories.create_subscription(session, customer, plan, status="active", source="grant")
    page = await admin.get(f"/admin/subscription/details/{sub.id}")
    assert page.status_code == 200
    assert f"/admin/operations/subscription/{sub.id}/cancel" in page.text
    assert f"/admin/operations/subscription/{sub.id}/extend" in page.text


async def test_detail_pages_show_statuses_as_coloured_labels(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    async with admin_services.db.transaction() as session:
        customer = await factories.create_customer(session)
        plan = await factories.create_plan(session, slug="badge-plan")
        sub = await factories.create_subscription(session, customer, plan, status="past_due")
    page = await admin.get(f"/admin/subscription/details/{sub.id}")
    assert page.status_code == 200
    assert '<span class="badge bg-orange-lt status-badge" data-status="past_due">Past due</span>' in page.text
    listing = await admin.get("/admin/subscription/list?status=past_due")
    assert 'data-status="past_due">Past due</span>' in listing.text
