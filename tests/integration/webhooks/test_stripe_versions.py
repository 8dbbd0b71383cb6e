"""Signed events of all six types, delivered over HTTP by the sandbox in the pinned API version's shapes and in
the pre-basil acacia shapes (a webhook endpoint keeps the version it was created with), applied in order by a
worker and out of order by hand; the rows and what admins, client apps and end users see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from billing_ui.formatting import BILLING_ZONE
from payment.admins.permissions import AdminActor, Role
from payment.config import Settings
from payment.embedded_pg import free_port
from payment.jobs import stripe_events
from payment.models import Customer, Invoice, Refund, StripeEvent
from payment.refunds import service as refunds
from payment.stripe.version import API_VERSION, PRE_BASIL_VERSION
from tests.integration.admin.conftest import sign_in
from tests.integration.jobs.conftest import eventually, running_worker
from tests.support import factories
from tests.support.app import ThreadServer, serve_service
from tests.support.stripe import FAILING_CARD, GOOD_CARD, SANDBOX_KEY, World

pytestmark = pytest.mark.slow
SIX = {
    "checkout.session.completed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "charge.refunded",
}
ADMIN_PASSWORD = "correct-horse-versions"
_n = count(1)

OWNER = AdminActor(1, Role.OWNER)


def _endpoint(sandbox_url: str, url: str, version: str) -> str:
    response = httpx.post(
        f"{sandbox_url}/v1/webhook_endpoints",
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        data={"url": url, "enabled_events[]": "*", "api_version": version},
    )
    response.raise_for_status()
    return str(response.json()["secret"])


@pytest.fixture(params=[API_VERSION, PRE_BASIL_VERSION])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def served(settings: Settings, world: World, version: str) -> AsyncIterator[ThreadServer]:
    """The app on a port the sandbox delivers to, through an endpoint created on `version` (no worker)."""
    port = free_port()
    secret = _endpoint(world.sandbox_url, f"http://127.0.0.1:{port}/api/v1/webhooks/stripe", version)
    server = serve_service(settings.replace(stripe_webhook_secret=secret), port).start()
    try:
        yield server
    finally:
        server.stop()


async def _delivered(world: World) -> None:
    """Every event the sandbox has emitted so far was delivered (and answered 200)."""
    await world.control("POST", "webhooks/flush", json={"timeout": 30})
    deliveries = (await world.control("GET", "webhooks/deliveries"))["deliveries"]
    assert {d["status"] for d in deliveries} <= {200}


async def _settled(world: World) -> None:
    await _delivered(world)

    async def nothing_pending() -> bool:
        async with world.services.db.session() as session:
            return not await session.scalar(
                select(func.count()).select_from(StripeEvent).where(StripeEvent.status.in_(("pending", "failed")))
            )

    await eventually(nothing_pending, timeout=60)


async def _invoices(world: World, customer: Customer) -> list[Invoice]:
    return await world.invoices(customer)


async def _refunds(world: World, invoice_id: int) -> list[tuple[int, str, str, bool]]:
    async with world.services.db.session() as session:
        rows = (await session.scalars(select(Refund).where(Refund.invoice_id == invoice_id).order_by(Refund.id))).all()
    return [(r.amount_cents, r.status, r.created_by, r.stripe_refund_id is not None) for r in rows]


async def _last_event_id(world: World) -> int:
    """Events stored before this test (the database is the module's) are not this test's."""
    async with world.services.db.session() as session:
        return int(await session.scalar(select(func.coalesce(func.max(StripeEvent.id), 0))) or 0)


def _day(value: datetime) -> str:
    return f"{value:%B} {value.day}, {value.year}"


async def test_a_life_in_each_api_version_applied_by_the_worker(
    world: World, served: ThreadServer, settings: Settings, version: str
) -> None:
    gateway = world.services.stripe
    before = await _last_event_id(world)
    plan = await world.plan(amount=29900)
    customer = await world.customer()
    async with world.services.db.transaction() as session:
        app, key = await factories.create_app(session)
        admin = await factories.create_admin(session, email=f"versions{next(_n)}@aquoris.test", password=ADMIN_PASSWORD)
    async with running_worker(settings):
        checkout = await world.subscribe(customer, plan)
        await world.set_card(checkout["customer"], FAILING_CARD)
        await world.advance(31)  # the renewal is declined
        await _settled(world)
        first, renewal = await _invoices(world, customer)
        assert (first.status, first.stripe_charge_id is not None, first.stripe_payment_intent_id is not None) == (
            "paid",
            True,
            True,
        )
        assert (renewal.status, renewal.last_payment_error, renewal.stripe_payment_intent_id is not None) == (
            "payment_failed",
            "Your card was declined.",
            True,
        )

        await world.set_card(checkout["customer"], GOOD_CARD)
        await world.advance(4)  # Stripe's retry succeeds
        await _settled(world)
        # an admin refund: recorded, committed, sent with our id; the charge.refunded webhook confirms that row
        async with world.services.db.transaction() as session:
            issued = await refunds.issue(session, first.id, amount_cents=9900, reason="Goodwill", actor=OWNER)
        await refunds.send_to_stripe(world.services.db, gateway, issued.id, actor=OWNER)
        # a refund made in Stripe's Dashboard: no metadata of ours
        await world.control("POST", f"invoices/{renewal.stripe_invoice_id}/dashboard_refund", data={"amount": "5000"})
        # the enum of 2025-07-30.basil: cancel_at at the period end, cancel_at_period_end stays false
        updated = await gateway.update_subscription(checkout["subscription"], {"cancel_at": "min_period_end"})
        assert updated["cancel_at_period_end"] is False and updated["cancel_at"]
        await _settled(world)

    assert await _refunds(world, first.id) == [(9900, "succeeded", "admin:1", True)]
    assert await _refunds(world, renewal.id) == [(5000, "succeeded", "stripe", True)]
    first, renewal = await _invoices(world, customer)
    assert (first.status, first.amount_refunded_cents) == ("partially_refunded", 9900)
    assert (renewal.status, renewal.amount_refunded_cents, renewal.attempt_count) == ("partially_refunded", 5000, 2)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.cancel_at is not None and sub.cancels_on == sub.cancel_at
    assert sub.cancel_at == sub.current_period_end and sub.status == "active"
    cancels = _day(sub.cancel_at.astimezone(BILLING_ZONE))  # the billing page shows Bangkok dates

    async with httpx.AsyncClient(base_url=served.url, timeout=30, follow_redirects=True) as http:
        auth = {"Authorization": f"Bearer {key}"}
        entitlement = (
            await http.get(
                f"/api/v1/customers/{customer.external_user_id}/subscription",
                params={"appSlug": app.slug},
                headers=auth,
            )
        ).json()
        assert entitlement["cancelsAt"] == sub.cancel_at.isoformat().replace("+00:00", "Z")
        assert entitlement["cancelAtPeriodEnd"] is True
        opened = (
            await http.post(
                "/api/v1/sessions",
                headers=auth,
                json={"externalUserId": customer.external_user_id, "appSlug": app.slug},
            )
        ).json()
        page = await http.get(opened["url"], params={"lang": "en"})
        assert f"Cancels on {cancels}" in page.text
        assert (await sign_in(http, admin.email, ADMIN_PASSWORD)).status_code == 200
        listed = await http.get("/admin/subscription/list")
        assert "cancels on" in listed.text

    async with running_worker(settings):
        await world.advance(31)  # the subscription ends at cancel_at
        await _settled(world)
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "canceled"
    async with world.services.db.session() as session:
        seen = dict(
            (
                await session.execute(
                    select(StripeEvent.type, StripeEvent.api_version).where(
                        StripeEvent.status == "handled", StripeEvent.id > before
                    )
                )
            ).all()
        )
    assert set(seen) >= SIX and set(seen.values()) == {version}


async def test_out_of_order_in_each_api_version_gives_the_natural_state(
    world: World, served: ThreadServer, version: str
) -> None:
    gateway = world.services.stripe
    before = await _last_event_id(world)
    plan = await world.plan(amount=29900)
    ann, bob = await world.customer(), await world.customer()
    ann_checkout = await world.subscribe(ann, plan)
    bob_checkout = await world.subscribe(bob, plan)
    await world.set_card(ann_checkout["customer"], FAILING_CARD)
    await world.advance(31)  # ann's renewal is declined, bob's is paid
    await world.set_card(ann_checkout["customer"], GOOD_CARD)
    await world.advance(4)
    bob_invoices = (await gateway.list_invoices({"customer": bob_checkout["customer"], "limit": 10}))["data"]
    await world.control("POST", f"invoices/{bob_invoices[-1]['id']}/dashboard_refund")
    await gateway.update_subscription(ann_checkout["subscription"], {"cancel_at": "max_period_end"})
    await gateway.cancel_subscription(bob_checkout["subscription"])
    await _delivered(world)
    async with world.services.db.session() as session:
        stored = (
            await session.execute(
                select(StripeEvent.id, StripeEvent.type, StripeEvent.api_version, StripeEvent.payload)
                .where(StripeEvent.id > before)
                .order_by(StripeEvent.id)
            )
        ).all()
    ours = [s for s in stored if s.type in SIX | {"customer.subscription.created"}]
    assert {s.type for s in ours} >= SIX and {s.api_version for s in ours} == {version}
    if version == PRE_BASIL_VERSION:  # really the old shapes: the invoice names its charge and subscription
        paid = next(s.payload["data"]["object"] for s in ours if s.type == "invoice.paid")
        assert "parent" not in paid and paid["subscription"] and paid["charge"]

    async def apply(rows: list[Any]) -> dict[str, Any]:
        for row in rows:
            await stripe_events.process_event(world.services, row.id)
        return await world.snapshot([ann, bob])

    backwards = await apply(list(reversed(ours)))
    await world.forget([ann, bob], [])
    async with world.services.db.transaction() as session:
        for row in ours:
            found = await session.get(StripeEvent, row.id)
            assert found is not None
            found.status, found.handled_at = "pending", None
    natural = await apply(ours)
    assert backwards == natural
    assert sorted(s[3] for s in natural["subscriptions"]) == ["active", "canceled"]
    assert [r[3] for r in natural["refunds"]] == ["succeeded"]
    assert any(i[12] == "Your card was declined." for i in natural["invoices"])
