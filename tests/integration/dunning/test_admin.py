"""The admin sees a customer's dunning case and notices, a bounce, resends a notice, extends grace (both audited),
and reads every email rendered in the Outbox."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, update

from payment.admins import service as admins
from payment.bootstrap import create_app
from payment.dunning import channel
from payment.models import App, AuditLog, OutboxMessage
from payment.outbox import delivery
from payment.runtime import Services
from tests.integration.admin.conftest import csrf_from, sign_in
from tests.integration.dunning import world
from tests.integration.dunning.mailbox import SmtpServer
from tests.support import factories
from tests.support.app import asgi_client

EMAIL, PASSWORD = "ops@aquoris.test", "correct-horse-battery"


@pytest.fixture(scope="module")
async def admin(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with services.db.transaction() as session:
        await admins.create_admin(session, email=EMAIL, name="Ops", password=PASSWORD, actor="test")
    async with asgi_client(create_app(services=services)) as client:
        assert (await sign_in(client, EMAIL, PASSWORD)).status_code == 302
        yield client


async def _operate(
    admin: httpx.AsyncClient, page_path: str, action_path: str, values: dict[str, str]
) -> httpx.Response:
    """Submit a panel form, then confirm it, as an admin does."""
    token = csrf_from((await admin.get(page_path)).text)
    first = await admin.post(action_path, data={**values, "csrf_token": token})
    assert first.status_code == 200 and "Confirm" in first.text, first.text
    return await admin.post(action_path, data={**values, "csrf_token": csrf_from(first.text), "confirm": "yes"})


async def _audit(services: Services, action: str) -> list[AuditLog]:
    async with services.db.session() as session:
        return list((await session.scalars(select(AuditLog).where(AuditLog.action == action))).all())


async def test_the_customer_page_shows_the_case_a_bounce_and_lets_an_admin_resend_and_extend(
    services: Services, admin: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    smtp_server.mailbox.refuse["typo@exmaple.com"] = "550 5.1.1 Mailbox unavailable"
    _app, _key, _plan, customer, _sub, invoice = await world.renewal(services, email="typo@exmaple.com")
    for attempt in (1, 2):
        await world.fail(services, invoice.id, attempt)
    await channel.deliver(services.db, services.settings)
    case = await world.case(services, invoice.id)
    [notice] = await world.emails(services, customer)

    path = f"/admin/customer/details/{customer.id}"
    page = (await admin.get(path)).text
    assert "Dunning and notices" in page
    assert re.search(rf'data-case-id="{case.id}".*?class="case-attempts">2<', page, re.S)
    assert "Stripe retries on 2031-01-07 02:30 UTC" in page
    assert (
        f"Notice #{notice.id} (payment_failed) to typo@exmaple.com could not be delivered: "
        "The mail server refused the address (550)."
    ) in page

    # the address is fixed at the mail provider; the admin resends
    del smtp_server.mailbox.refuse["typo@exmaple.com"]
    action = f"/admin/operations/customer/{customer.id}/resend-notice"
    done = await _operate(admin, path, action, {"nonce": f"resend-{notice.id}-1-failed", "message": str(notice.id)})
    assert done.status_code == 303
    await channel.deliver(services.db, services.settings)
    assert [m["Subject"] for m in smtp_server.mailbox.to("typo@exmaple.com")] == [
        "Your payment for Vega Pro did not go through"
    ]
    [resent] = [a for a in await _audit(services, "dunning.notice_resent") if a.entity_id == str(customer.id)]
    assert (resent.actor.startswith("admin:"), resent.details["previous_status"]) == (True, "failed")

    action = f"/admin/operations/customer/{customer.id}/extend-grace"
    done = await _operate(
        admin, path, action, {"nonce": f"grace-{case.id}-1764864001", "case": str(case.id), "days": "10"}
    )
    assert done.status_code == 303
    extended = await world.case(services, invoice.id)
    assert 9 <= (extended.grace_ends_at - case.grace_ends_at).days <= 10
    [audit] = [a for a in await _audit(services, "dunning.grace_extended") if a.entity_id == str(customer.id)]
    assert audit.details["days"] == 10

    # a case number of another customer is refused, nothing changes
    bad = await _operate_error(
        admin, path, action, {"nonce": f"grace-{case.id}-1764864002", "case": "999999", "days": "3"}
    )
    assert "This customer has no such dunning case." in bad


async def _operate_error(admin: httpx.AsyncClient, page_path: str, action_path: str, values: dict[str, str]) -> str:
    token = csrf_from((await admin.get(page_path)).text)
    first = await admin.post(action_path, data={**values, "csrf_token": token})
    response = await admin.post(action_path, data={**values, "csrf_token": csrf_from(first.text), "confirm": "yes"})
    assert response.status_code == 422
    return response.text


async def test_a_notice_in_doubt_is_shown_and_an_admin_sends_it_again_from_the_outbox_audited(
    services: Services, admin: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    address = "doubt@example.com"
    _app, _key, _plan, customer, _sub, invoice = await world.renewal(services, email=address)
    await world.fail(services, invoice.id, 1)
    [notice] = await world.emails(services, customer)
    # what a worker killed after the SMTP hand-off leaves (tests/dunning/test_handoff_crash.py makes it for real)
    async with services.db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == notice.id)
            .values(status="in_doubt", attempts=1, handed_off_at=func.now(), last_error=delivery.IN_DOUBT_ERROR)
        )
    await channel.deliver(services.db, services.settings)
    assert smtp_server.mailbox.to(address) == []  # not sent again by itself

    page = (await admin.get(f"/admin/customer/details/{customer.id}")).text
    assert f"Notice #{notice.id} (payment_failed) to {address} is in doubt" in page
    assert re.search(rf'data-resend="{notice.id}">Send again<', page)
    listing = (await admin.get("/admin/outbox")).text
    assert re.search(rf'data-email-id="{notice.id}".*?in doubt.*?data-send-again="{notice.id}"', listing, re.S)

    action = f"/admin/operations/customer/{customer.id}/resend-notice"
    values = {"nonce": f"resend-{notice.id}-1-in_doubt", "message": str(notice.id)}
    assert (await _operate(admin, "/admin/outbox", action, values)).status_code == 303
    await channel.deliver(services.db, services.settings)
    assert len(smtp_server.mailbox.to(address)) == 1
    [audit] = [a for a in await _audit(services, "dunning.notice_resent") if a.entity_id == str(customer.id)]
    assert audit.details["previous_status"] == "in_doubt"


async def test_the_outbox_lists_emails_and_shows_each_rendered_and_every_template_previews(
    services: Services, admin: httpx.AsyncClient
) -> None:
    _app, _key, _plan, customer, _sub, invoice = await world.renewal(services, email="hana@example.com", locale="th")
    await world.fail(services, invoice.id, 1)
    [notice] = await world.emails(services, customer)
    listing = await admin.get("/admin/outbox")
    assert listing.status_code == 200 and f'data-email-id="{notice.id}"' in listing.text
    shown = await admin.get(f"/admin/outbox/{notice.id}")
    assert shown.status_code == 200
    assert "การชำระเงินสำหรับ" in shown.text and 'sandbox=""' in shown.text
    for language, words in (("en", "Receipt for your payment of"), ("th", "ใบเสร็จสำหรับการชำระเงิน")):
        preview = await admin.get(f"/admin/outbox/preview/receipt/{language}")
        assert preview.status_code == 200 and words in preview.text
    assert (await admin.get("/admin/outbox/preview/nonsense/en")).status_code == 404


async def test_an_admin_sets_an_apps_grace_policy_audited_and_a_bad_one_is_refused(
    services: Services, admin: httpx.AsyncClient
) -> None:
    async with services.db.transaction() as session:
        app, _key = await factories.create_app(session, name="Policy")
    path = f"/admin/app/edit/{app.id}"
    form = {"name": "Policy", "return_url": "https://app.example.com/settings", "is_active": "y"}
    page = await admin.get(path)
    assert re.search(r'name="grace_days"[^>]*value="7"', page.text)
    bad = await admin.post(
        path,
        data={**form, "grace_days": "90", "after_grace": "free", "csrf_token": csrf_from(page.text), "save": "Save"},
    )
    assert bad.status_code == 400 and "Grace days must be between 0 and 60." in bad.text
    good = await admin.post(
        path,
        data={**form, "grace_days": "10", "after_grace": "free", "csrf_token": csrf_from(page.text), "save": "Save"},
    )
    assert good.status_code == 302
    async with services.db.session() as session:
        saved = await session.get_one(App, app.id)
        [row] = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action == "app.grace_policy_changed", AuditLog.entity_id == str(app.id))
            )
        ).all()
    assert (saved.grace_days, saved.after_grace) == (10, "free")
    assert row.details == {
        "from": {"grace_days": 7, "after_grace": "blocked"},
        "to": {"grace_days": 10, "after_grace": "free"},
    }


async def test_the_dashboard_warns_when_end_users_cannot_be_emailed(
    services: Services, admin: httpx.AsyncClient
) -> None:
    assert 'id="mail-not-configured"' not in (await admin.get("/admin/")).text  # this module's SMTP_URL is set
    mute = dataclasses.replace(services, settings=services.settings.replace(smtp_url=None))
    _app, _key, _plan, _customer, _sub, invoice = await world.renewal(services, email="waiting@example.com")
    await world.fail(services, invoice.id, 1)
    async with asgi_client(create_app(services=mute)) as client:
        assert (await sign_in(client, EMAIL, PASSWORD)).status_code == 302
        page = (await client.get("/admin/")).text
    assert 'id="mail-not-configured"' in page and "End users are not being emailed." in page
    assert re.search(r"[1-9]\d* notices? waiting", page)
