"""Admin sessions end server-side: a cookie copied before sign-out, after a password change, a deactivation or
"Sign out everywhere" no longer signs anybody in, even though its signature and max-age are still valid."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from payment.admins import service as admins
from payment.bootstrap import create_app
from payment.runtime import Services
from tests.integration.admin.conftest import page_token, sign_in
from tests.support.app import asgi_client

PASSWORD = "a-long-admin-password"
Browser = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser(admin_services: Services) -> Browser:
    @asynccontextmanager
    async def open_browser() -> AsyncIterator[httpx.AsyncClient]:
        async with asgi_client(create_app(services=admin_services)) as client:
            yield client

    return open_browser


@pytest.fixture
async def victim(admin_services: Services) -> str:
    """A fresh admin per test, so ending its sessions leaves the module's signed-in admin alone."""
    email = f"ops-{secrets.token_hex(4)}@aquoris.test"
    async with admin_services.db.transaction() as session:
        await admins.create_admin(session, email=email, name="Ops", password=PASSWORD, actor="test")
    return email


async def signed_in(client: httpx.AsyncClient, email: str) -> str:
    assert (await sign_in(client, email, PASSWORD)).status_code == 302
    assert (await client.get("/admin/app/list")).status_code == 200
    cookie = client.cookies.get("aquoris_admin")
    assert cookie
    return cookie


async def works(browser: Browser, cookie: str) -> bool:
    """Whether a browser holding only this copied cookie is signed in."""
    async with browser() as thief:
        thief.cookies.set("aquoris_admin", cookie)
        response = await thief.get("/admin/app/list")
        assert response.status_code in (200, 302)
        return response.status_code == 200


async def admin_id(services: Services, email: str) -> int:
    async with services.db.session() as session:
        found = await admins.find_by_email(session, email)
        assert found is not None
        return found.id


async def test_a_cookie_copied_before_sign_out_no_longer_works(browser: Browser, victim: str) -> None:
    async with browser() as own, browser() as laptop:
        copied = await signed_in(own, victim)
        other_browser = await signed_in(laptop, victim)
        assert await works(browser, copied)
        token = await page_token(own, "/admin/")
        assert (await own.post("/admin/logout", data={"csrf_token": token})).status_code in (302, 303)
    assert not await works(browser, copied)
    # signing out ends this browser's session only; "Sign out everywhere" is there for the others
    assert await works(browser, other_browser)


async def test_a_password_change_ends_the_other_sessions_but_keeps_the_changers(
    browser: Browser, victim: str, admin_services: Services
) -> None:
    async with browser() as own, browser() as laptop:
        await signed_in(own, victim)
        elsewhere = await signed_in(laptop, victim)
        pk = await admin_id(admin_services, victim)
        token = await page_token(own, f"/admin/admin-user/{pk}/password")
        changed = await own.post(
            f"/admin/admin-user/{pk}/password",
            data={"password": "another-long-password", "confirm": "another-long-password", "csrf_token": token},
        )
        assert changed.status_code in (302, 303)
        assert (await own.get("/admin/app/list")).status_code == 200  # the browser that changed it stays in
        assert (await laptop.get("/admin/app/list")).status_code == 302
    assert not await works(browser, elsewhere)


async def test_another_admin_changing_the_password_ends_every_session(
    admin: httpx.AsyncClient, browser: Browser, victim: str, admin_services: Services
) -> None:
    async with browser() as own:
        cookie = await signed_in(own, victim)
    pk = await admin_id(admin_services, victim)
    token = await page_token(admin, f"/admin/admin-user/{pk}/password")
    await admin.post(
        f"/admin/admin-user/{pk}/password",
        data={"password": "reset-by-root-1234", "confirm": "reset-by-root-1234", "csrf_token": token},
    )
    assert not await works(browser, cookie)


async def test_deactivation_ends_sessions_for_good_even_after_reactivation(
    admin: httpx.AsyncClient, browser: Browser, victim: str, admin_services: Services
) -> None:
    async with browser() as own:
        cookie = await signed_in(own, victim)
    pk = await admin_id(admin_services, victim)
    for active in ("0", "1"):
        token = await page_token(admin, "/admin/admin-user/list")
        response = await admin.post(f"/admin/admin-user/{pk}/set-active", data={"active": active, "csrf_token": token})
        assert response.status_code in (302, 303)
    assert not await works(browser, cookie)


async def test_sign_out_everywhere_ends_every_session_of_that_admin(
    admin: httpx.AsyncClient, browser: Browser, victim: str, admin_services: Services
) -> None:
    async with browser() as one, browser() as two:
        cookies = [await signed_in(one, victim), await signed_in(two, victim)]
    pk = await admin_id(admin_services, victim)
    listing = await admin.get("/admin/admin-user/list")
    assert f"/admin/admin-user/{pk}/end-sessions" in listing.text and "Sign out everywhere" in listing.text
    token = await page_token(admin, "/admin/admin-user/list")
    ended = await admin.post(f"/admin/admin-user/{pk}/end-sessions", data={"csrf_token": token})
    assert ended.status_code in (302, 303)
    assert "Every session of" in (await admin.get(ended.headers["location"])).text
    for cookie in cookies:
        assert not await works(browser, cookie)
    assert (await admin.get("/admin/app/list")).status_code == 200  # the acting admin is untouched
    async with browser() as again:
        await signed_in(again, victim)  # signing in again works
