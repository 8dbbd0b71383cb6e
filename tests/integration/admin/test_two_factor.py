"""Two-factor sign-in over HTTP: enrolment from the page's secret, sign-in with a code and with a backup code,
replays refused, codes rate-limited with passwords, step-up before refunds and keys, ADMIN_REQUIRE_2FA."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count

import httpx
import pyotp
import pytest
from sqlalchemy import select

from payment.admins import service as admins
from payment.bootstrap import create_app
from payment.config import Settings
from payment.models import AuditLog
from payment.runtime import Services
from tests.integration.admin.conftest import ADMIN_PASSWORD, csrf_from, sign_in
from tests.support import factories
from tests.support.app import running_services

SECRET_RE = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7]+)<')
CODES_RE = re.compile(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>")
_n = count(1)


@pytest.fixture(scope="module")
async def strict_services(admin_settings: Settings) -> AsyncIterator[Services]:
    """Step-up asked before every sensitive action (no grace period) and a small sign-in limit."""
    async with running_services(admin_settings.replace(admin_step_up_seconds=0, login_rate_limit=6)) as services:
        yield services


@asynccontextmanager
async def browser(services: Services, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def new_admin(services: Services) -> str:
    email = f"tfa{next(_n)}-{time.monotonic_ns()}@aquoris.test"
    async with services.db.transaction() as session:
        await admins.create_admin(session, email=email, name="2FA", password=ADMIN_PASSWORD, actor="test")
    return email


async def enrol(client: httpx.AsyncClient) -> tuple[pyotp.TOTP, list[str]]:
    page = await client.get("/admin/two-factor/setup")
    assert page.status_code == 200
    assert "<svg" in page.text and "http" not in page.text.split('id="totp-qr"')[1].split("</div>")[0].replace(
        "http://www.w3.org/2000/svg", ""
    )  # the QR is drawn inline, not fetched from anywhere
    found = SECRET_RE.search(page.text)
    assert found, page.text
    totp = pyotp.TOTP(found.group(1))
    done = await client.post("/admin/two-factor/setup", data={"code": totp.now(), "csrf_token": csrf_from(page.text)})
    assert done.status_code == 200, done.text
    codes = CODES_RE.findall(done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


async def second_step(client: httpx.AsyncClient, email: str, code: str) -> httpx.Response:
    first = await sign_in(client, email, ADMIN_PASSWORD)
    assert first.status_code == 302 and first.headers["location"].endswith("/admin/two-factor")
    page = await client.get("/admin/two-factor")
    return await client.post("/admin/two-factor", data={"code": code, "csrf_token": csrf_from(page.text)})


async def sign_out(client: httpx.AsyncClient) -> None:
    token = csrf_from((await client.get("/admin/")).text)
    await client.post("/admin/logout", data={"csrf_token": token})


async def test_enrol_then_sign_in_with_a_code_a_backup_code_and_never_twice(admin_services: Services) -> None:
    email = await new_admin(admin_services)
    async with browser(admin_services, "10.1.0.1") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        totp, codes = await enrol(client)
        await sign_out(client)

        # the password alone no longer signs in
        first = await sign_in(client, email, ADMIN_PASSWORD)
        assert first.headers["location"].endswith("/admin/two-factor")
        assert (await client.get("/admin/")).status_code == 302

        code = totp.at(time.time() + 30)  # the next step: newer than the one used to confirm
        signed_in = await second_step(client, email, code)
        assert signed_in.status_code == 302 and signed_in.headers["location"].endswith("/admin/")
        assert (await client.get("/admin/")).status_code == 200
        await sign_out(client)

        replayed = await second_step(client, email, code)
        assert replayed.status_code == 400 and "already used" in replayed.text
        assert (await client.get("/admin/")).status_code == 302

        with_backup = await second_step(client, email, codes[0].upper())
        assert with_backup.status_code == 302
        await sign_out(client)
        again = await second_step(client, email, codes[0])
        assert again.status_code == 400

    async with admin_services.db.session() as session:
        admin = await admins.find_by_email(session, email)
        assert admin is not None
        rows = (
            await session.execute(
                select(AuditLog.action, AuditLog.details)
                .where(
                    AuditLog.entity_id == str(admin.id),
                    AuditLog.action.in_(["admin.two_factor_enabled", "admin.signed_in"]),
                )
                .order_by(AuditLog.id)
            )
        ).all()
        failed = (
            (
                await session.execute(
                    select(AuditLog.details).where(
                        AuditLog.action == "admin.sign_in_failed", AuditLog.details["email"].astext == email
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(a, d.get("method")) for a, d in rows] == [
        ("admin.signed_in", "password"),
        ("admin.two_factor_enabled", None),
        ("admin.signed_in", "totp"),
        ("admin.signed_in", "backup"),
    ]
    assert [d["reason"] for d in failed] == ["bad_code", "bad_code"]


async def test_codes_count_against_the_sign_in_limit(strict_services: Services) -> None:
    email = await new_admin(strict_services)
    async with browser(strict_services, "10.1.0.2") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        await enrol(client)
        await sign_out(client)
        first = await sign_in(client, email, ADMIN_PASSWORD)  # 2nd attempt from this IP
        assert first.status_code == 302
        page = await client.get("/admin/two-factor")
        answers = [
            await client.post("/admin/two-factor", data={"code": "000000", "csrf_token": csrf_from(page.text)})
            for _ in range(5)
        ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
    assert "Too many sign-in attempts" in answers[-1].text


async def test_refund_and_keys_ask_for_a_fresh_code(strict_services: Services) -> None:
    email = await new_admin(strict_services)
    async with strict_services.db.transaction() as session:
        customer = await factories.create_customer(session)
        invoice = await factories.create_invoice(session, customer, source="manual")
        app, _ = await factories.create_app(session)
    async with browser(strict_services, "10.1.0.3") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        totp, _ = await enrol(client)
        form_path = f"/admin/operations/invoice/{invoice.id}/refund"
        asked = await client.get(form_path)
        assert asked.status_code == 303 and "/admin/step-up?next=" in asked.headers["location"]
        copy = await client.post(
            f"/admin/app/{app.id}/copy-key", headers={"X-CSRF-Token": csrf_from((await client.get("/admin/")).text)}
        )
        assert copy.status_code == 403 and "step_up" in copy.json() and "key" not in copy.json()

        step_up = await client.get(asked.headers["location"])
        assert 'name="code"' in step_up.text and 'name="password"' not in step_up.text
        wrong = await client.post(
            asked.headers["location"], data={"code": "123456", "csrf_token": csrf_from(step_up.text)}
        )
        assert wrong.status_code == 400
        confirmed = await client.post(
            asked.headers["location"], data={"code": totp.at(time.time() + 30), "csrf_token": csrf_from(step_up.text)}
        )
        assert confirmed.status_code == 303 and confirmed.headers["location"] == form_path


async def test_without_two_factor_the_password_confirms(strict_services: Services) -> None:
    email = await new_admin(strict_services)
    async with strict_services.db.transaction() as session:
        app, _ = await factories.create_app(session)
    async with browser(strict_services, "10.1.0.4") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        token = csrf_from((await client.get("/admin/")).text)
        asked = await client.post(f"/admin/app/{app.id}/rotate-key", data={"csrf_token": token})
        assert asked.status_code == 303 and "/admin/step-up" in asked.headers["location"]
        page = await client.get(asked.headers["location"])
        assert 'name="password"' in page.text
        confirmed = await client.post(
            asked.headers["location"], data={"password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)}
        )
        assert confirmed.status_code == 303 and confirmed.headers["location"] == "/admin/app/list"


async def test_a_deployment_can_require_two_factor(admin_settings: Settings) -> None:
    async with running_services(admin_settings.replace(admin_require_2fa=True)) as services:
        email = await new_admin(services)
        async with browser(services, "10.1.0.5") as client:
            assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
            blocked = await client.get("/admin/customer/list")
            assert blocked.status_code == 303 and blocked.headers["location"].endswith("/admin/two-factor/setup")
            await enrol(client)
            assert (await client.get("/admin/customer/list")).status_code == 200


async def test_an_owner_resets_a_lost_two_factor(admin_services: Services, admin: httpx.AsyncClient) -> None:
    email = await new_admin(admin_services)
    async with browser(admin_services, "10.1.0.6") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        await enrol(client)
    async with admin_services.db.session() as session:
        target = await admins.find_by_email(session, email)
    assert target is not None
    listing = await admin.get("/admin/admin-user/list")
    assert f'data-reset-2fa="{email}"' in listing.text
    reset = await admin.post(
        f"/admin/admin-user/{target.id}/reset-two-factor", data={"csrf_token": csrf_from(listing.text)}
    )
    assert reset.status_code == 303
    async with browser(admin_services, "10.1.0.7") as client:
        signed_in = await sign_in(client, email, ADMIN_PASSWORD)
        assert signed_in.headers["location"].endswith("/admin/")


async def test_an_export_asks_for_a_fresh_confirmation_then_downloads(strict_services: Services) -> None:
    email = await new_admin(strict_services)
    async with browser(strict_services, "10.1.0.7") as client:
        assert (await sign_in(client, email, ADMIN_PASSWORD)).status_code == 302
        asked = await client.get("/admin/exports/customers.csv?currency=thb")
        assert asked.status_code == 303 and "/admin/step-up?next=" in asked.headers["location"]
        page = await client.get(asked.headers["location"])
        confirmed = await client.post(
            asked.headers["location"], data={"password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)}
        )
        assert confirmed.status_code == 303
        assert confirmed.headers["location"] == "/admin/exports/customers.csv?currency=thb"
        exported = await client.get(confirmed.headers["location"])
        assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")  # the CSV, with its BOM
