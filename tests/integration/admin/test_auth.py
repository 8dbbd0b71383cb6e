"""Signing in and out of /admin: bcrypt check, one answer for every bad credential, cookie flags, audit."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from payment.bootstrap import create_app
from payment.models import AuditLog
from payment.runtime import Services
from tests.integration.admin.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_from, page_token, sign_in
from tests.support.app import asgi_client, running_services


async def audit_actions(services: Services, **where: str) -> list[AuditLog]:
    async with services.db.session() as session:
        stmt = select(AuditLog).order_by(AuditLog.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(AuditLog, name) == value)
        return list((await session.execute(stmt)).scalars().all())


async def test_sign_in_opens_the_admin_and_is_audited(
    anon: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    assert (await anon.get("/admin/app/list")).status_code == 302  # to the login page
    response = await sign_in(anon)
    assert response.status_code == 302
    assert (await anon.get("/admin/app/list")).status_code == 200
    rows = await audit_actions(admin_services, action="admin.signed_in", actor=f"admin:{root_admin}")
    assert rows and rows[-1].ip == "127.0.0.1"


async def test_wrong_password_and_unknown_email_look_the_same(
    anon: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    wrong = await sign_in(anon, ADMIN_EMAIL, "not-the-password")
    unknown = await sign_in(anon, "nobody@aquoris.test", ADMIN_PASSWORD)
    assert wrong.status_code == unknown.status_code == 400
    assert "Invalid email or password." in wrong.text

    def page(response: httpx.Response, email: str) -> str:  # the page minus the echoed email and the token
        return response.text.replace(csrf_from(response.text), "").replace(email, "")

    assert page(wrong, ADMIN_EMAIL) == page(unknown, "nobody@aquoris.test")
    failed = await audit_actions(admin_services, action="admin.sign_in_failed")
    emails = [row.details["email"] for row in failed]
    assert ADMIN_EMAIL in emails and "nobody@aquoris.test" in emails
    assert all("password" not in row.details for row in failed)


async def test_session_cookie_is_httponly_strict_and_expires(anon: httpx.AsyncClient, root_admin: int) -> None:
    response = await sign_in(anon)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
    assert "path=/admin" in cookie
    assert "secure" not in cookie  # plain http outside production


async def test_production_marks_the_session_cookie_secure(admin_services: Services, root_admin: int) -> None:
    settings = admin_services.settings.replace(app_env="production", login_rate_limit=5)
    async with (
        running_services(settings) as services,
        asgi_client(create_app(services=services), base_url="https://testserver") as client,
    ):
        response = await sign_in(client)
        assert response.status_code == 302
        assert "; secure" in response.headers["set-cookie"].lower()


async def test_sign_out_is_a_post_and_is_audited(
    anon: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    await sign_in(anon)
    admin = anon
    assert (await admin.get("/admin/logout")).status_code == 405
    assert (await admin.get("/admin/app/list")).status_code == 200  # still signed in after the GET
    token = await page_token(admin)
    response = await admin.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert (await admin.get("/admin/app/list")).status_code == 302
    assert await audit_actions(admin_services, action="admin.signed_out", actor=f"admin:{root_admin}")


async def test_a_deactivated_admin_is_signed_out_at_once(anon: httpx.AsyncClient, admin_services: Services) -> None:
    from payment.admins import service as admins

    async with admin_services.db.transaction() as session:
        other = await admins.create_admin(
            session, email="temp@aquoris.test", name="Temp", password="temporary-pass-1", actor="test"
        )
    assert (await sign_in(anon, "temp@aquoris.test", "temporary-pass-1")).status_code == 302
    async with admin_services.db.transaction() as session:
        await admins.set_active(session, other.id, False, acting_admin_id=0, actor="test")
    assert (await anon.get("/admin/app/list")).status_code == 302
    refused = await sign_in(anon, "temp@aquoris.test", "temporary-pass-1")
    assert refused.status_code == 400 and "Invalid email or password." in refused.text
