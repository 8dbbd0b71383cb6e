"""Admin "Webhook events": the failing event with its error, a status filter, and Retry as a POST with CSRF."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from itertools import count

import httpx
import pytest
from sqlalchemy import select, text

from payment.bootstrap import create_app
from payment.models import AuditLog, StripeEvent, utcnow
from payment.runtime import Services
from tests.integration.admin.conftest import csrf_from, sign_in
from tests.support.app import asgi_client

EMAIL, PASSWORD = "webhooks-admin@aquoris.test", "correct-horse-battery"
_n = count(1)


@pytest.fixture(scope="module")
async def admin_id(services: Services) -> int:
    from payment.admins import service as admins

    async with services.db.transaction() as session:
        admin = await admins.create_admin(session, email=EMAIL, name="Ops", password=PASSWORD, actor="test")
        return admin.id


@pytest.fixture
async def admin(services: Services, admin_id: int) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(services=services)) as client:
        assert (await sign_in(client, EMAIL, PASSWORD)).status_code == 302
        yield client


async def _event(services: Services, status: str, error: str | None = None) -> StripeEvent:
    n = next(_n)
    row = StripeEvent(
        stripe_event_id=f"evt_admin_{n}",
        type="invoice.paid",
        object_id=f"in_admin_{n}",
        payload={"id": f"evt_admin_{n}", "type": "invoice.paid", "data": {"object": {"id": f"in_admin_{n}"}}},
        stripe_created_at=utcnow(),
        status=status,
        attempts=10 if error else 1,
        last_error=error,
        handled_at=utcnow() if status == "handled" else None,
    )
    async with services.db.transaction() as session:
        session.add(row)
    return row


async def test_failed_events_are_listed_with_their_error_and_a_retry_form(
    admin: httpx.AsyncClient, services: Services
) -> None:
    failed = await _event(services, "failed", "No customer of ours matches Stripe invoice in_x.")
    handled = await _event(services, "handled")
    page = await admin.get("/admin/stripe-event/list", params={"status": "failed"})
    assert page.status_code == 200
    assert failed.stripe_event_id in page.text and "No customer of ours matches" in page.text
    assert handled.stripe_event_id not in page.text
    assert f'action="http://testserver/admin/stripe-event/retry/{failed.id}"' in page.text
    everything = await admin.get("/admin/stripe-event/list")
    assert handled.stripe_event_id in everything.text and "Webhook events" in everything.text
    details = await admin.get(f"/admin/stripe-event/details/{failed.id}")
    assert details.status_code == 200 and 'id="retry-form"' in details.text and "in_admin_" in details.text


async def test_retry_is_a_post_with_csrf_that_puts_the_event_back_in_the_queue(
    admin: httpx.AsyncClient, services: Services, admin_id: int
) -> None:
    failed = await _event(services, "failed", "Stripe could not be reached (network).")
    url = f"/admin/stripe-event/retry/{failed.id}"
    assert (await admin.get(url)).status_code == 405  # never a state change on GET
    assert (await admin.post(url, data={})).status_code == 403  # no CSRF token
    async with services.db.session() as session:
        assert (await session.get(StripeEvent, failed.id)).status == "failed"  # type: ignore[union-attr]

    token = csrf_from((await admin.get(f"/admin/stripe-event/details/{failed.id}")).text)
    response = await admin.post(url, data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/admin/stripe-event/details/{failed.id}")
    async with services.db.session() as session:
        row = await session.get(StripeEvent, failed.id)
        assert row is not None and row.status == "pending"
        actors = (
            await session.scalars(
                select(AuditLog.actor).where(
                    AuditLog.action == "stripe_event.retry", AuditLog.entity_id == str(failed.id)
                )
            )
        ).all()
        queued = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'payment:apply_stripe_event' "
                "AND (args->>'event_row_id')::bigint = :id"
            ),
            {"id": failed.id},
        )
    assert list(actors) == [f"admin:{admin_id}"] and queued == 1
    shown = await admin.get(f"/admin/stripe-event/details/{failed.id}")
    assert "applied again shortly" in shown.text


async def test_a_handled_event_cannot_be_retried(admin: httpx.AsyncClient, services: Services) -> None:
    handled = await _event(services, "handled")
    details = await admin.get(f"/admin/stripe-event/details/{handled.id}")
    assert 'id="retry-form"' not in details.text
    response = await admin.post(f"/admin/stripe-event/retry/{handled.id}", data={"csrf_token": csrf_from(details.text)})
    assert response.status_code == 303
    shown = await admin.get(response.headers["location"])
    assert "only failed or pending events can be retried" in shown.text


async def test_an_event_of_another_api_version_shows_the_mismatch(admin: httpx.AsyncClient, services: Services) -> None:
    from payment.stripe.version import API_VERSION, PRE_BASIL_VERSION

    old = await _event(services, "handled")
    current = await _event(services, "handled")
    async with services.db.transaction() as session:
        await session.execute(
            text("UPDATE stripe_events SET api_version = :v WHERE id = :i"), {"v": PRE_BASIL_VERSION, "i": old.id}
        )
        await session.execute(
            text("UPDATE stripe_events SET api_version = :v WHERE id = :i"), {"v": API_VERSION, "i": current.id}
        )
    page = await admin.get("/admin/stripe-event/list")
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r'<tr data-row-id="(\d+)".*?<td class="api-version">(.*?)</td>', page.text, re.S)
    }
    assert f"{PRE_BASIL_VERSION} ≠ {API_VERSION}" in rows[str(old.id)]
    assert rows[str(current.id)] == API_VERSION
