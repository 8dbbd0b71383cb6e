"""Admin accounts: created through the service with the guide's limits, deactivated (never oneself), new passwords."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from payment.admins import service as admins
from payment.models import AdminUser, AuditLog
from payment.runtime import Services
from tests.integration.admin.conftest import csrf_from, page_token, sign_in
from tests.integration.admin.test_apps import RAW_DB_WORDS
from tests.support.app import asgi_client

LINK_RE = re.compile(r"(/admin/set-password/[A-Za-z0-9_-]+)")


async def create(
    client: httpx.AsyncClient, email: str, name: str = "Ops", password: str | None = "a-good-password"
) -> httpx.Response:
    """Create an admin through the form; the owner gets a one-time link, which the new admin (another browser)
    opens to choose `password` (unless None)."""
    token = await page_token(client, "/admin/admin-user/create")
    created = await client.post(
        "/admin/admin-user/create", data={"email": email, "name": name, "csrf_token": token, "save": "Save"}
    )
    if created.status_code == 302 and password is not None:
        link = await created_link(client)
        async with asgi_client(client._transport.app) as newcomer:  # type: ignore[attr-defined]
            page = await newcomer.get(link)
            done = await newcomer.post(
                link, data={"password": password, "confirm": password, "csrf_token": csrf_from(page.text)}
            )
            assert done.status_code == 303, done.text
    return created


async def created_link(client: httpx.AsyncClient) -> str:
    listing = await client.get("/admin/admin-user/list")
    found = LINK_RE.search(listing.text)
    assert found, "the list shows no set-password link"
    return found.group(1)


async def find(services: Services, email: str) -> AdminUser:
    async with services.db.session() as session:
        found = await admins.find_by_email(session, email)
        assert found is not None
        return found


async def test_create_an_admin_who_can_then_sign_in(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, admin_services: Services
) -> None:
    assert (await create(admin, "Ops@Aquoris.test")).status_code == 302
    created = await find(admin_services, "ops@aquoris.test")
    assert created.password_hash.startswith("$2") and "a-good-password" not in created.password_hash
    assert (await sign_in(anon, "ops@aquoris.test", "a-good-password")).status_code == 302


@pytest.mark.parametrize(
    ("email", "name", "message"),
    [
        ("not-an-email", "Ops", "Enter a valid email address."),
        ("long@aquoris.test", "n" * 1025, "Name must be at most 1024 characters."),
    ],
)
async def test_the_guides_limits_give_clear_errors(
    admin: httpx.AsyncClient, email: str, name: str, message: str
) -> None:
    response = await create(admin, email, name)
    assert response.status_code == 400
    assert message in response.text
    assert not any(word in response.text for word in RAW_DB_WORDS)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("p" * 73, "Password must be at most 72 bytes"),
        ("รหัส" * 7, "Password must be at most 72 bytes"),  # 28 characters, 84 bytes
        ("short", "Password must be at least 8 characters."),
    ],
)
async def test_the_set_password_link_applies_the_password_limits(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, password: str, message: str
) -> None:
    email = f"limits{len(password)}{password[0]}@aquoris.test"
    assert (await create(admin, email, password=None)).status_code == 302
    link = await created_link(admin)
    page = await anon.get(link)
    assert page.status_code == 200 and email in page.text
    refused = await anon.post(
        link, data={"password": password, "confirm": password, "csrf_token": csrf_from(page.text)}
    )
    assert refused.status_code == 400 and message in refused.text


async def test_a_new_admin_chooses_their_password_once(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, admin_services: Services
) -> None:
    assert (await create(admin, "Newcomer@Aquoris.test", password=None)).status_code == 302
    created = await find(admin_services, "newcomer@aquoris.test")
    assert created.role == "viewer" and not created.password_hash.startswith("$2")
    assert (await sign_in(anon, "newcomer@aquoris.test", "")).status_code == 400
    link = await created_link(admin)
    page = await anon.get(link)
    done = await anon.post(
        link, data={"password": "my-own-secret-1", "confirm": "my-own-secret-1", "csrf_token": csrf_from(page.text)}
    )
    assert done.status_code == 303
    again = await anon.get(link)
    assert again.status_code == 404 and "expired or was already used" in again.text
    assert (await sign_in(anon, "newcomer@aquoris.test", "my-own-secret-1")).status_code == 302
    async with admin_services.db.session() as session:
        actions = (
            (
                await session.execute(
                    select(AuditLog.action).where(AuditLog.entity_id == str(created.id)).order_by(AuditLog.id)
                )
            )
            .scalars()
            .all()
        )
    assert actions[:3] == ["admin.created", "admin.password_link_issued", "admin.password_set_by_link"]


async def test_a_duplicate_email_is_friendly(admin: httpx.AsyncClient) -> None:
    await create(admin, "twin@aquoris.test")
    response = await create(admin, "TWIN@aquoris.test")
    assert response.status_code == 400 and "An admin with email twin@aquoris.test already exists." in response.text


async def test_nobody_can_deactivate_themselves(
    admin: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    token = await page_token(admin, "/admin/admin-user/list")
    response = await admin.post(f"/admin/admin-user/{root_admin}/set-active", data={"active": "0", "csrf_token": token})
    assert response.status_code == 303
    page = await admin.get("/admin/admin-user/list")
    assert "You cannot deactivate your own account." in page.text
    async with admin_services.db.session() as session:
        assert (await session.get(AdminUser, root_admin)).is_active  # type: ignore[union-attr]


async def test_deactivate_another_admin(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, admin_services: Services
) -> None:
    await create(admin, "leaver@aquoris.test")
    leaver = await find(admin_services, "leaver@aquoris.test")
    token = await page_token(admin, "/admin/admin-user/list")
    await admin.post(f"/admin/admin-user/{leaver.id}/set-active", data={"active": "0", "csrf_token": token})
    assert not (await find(admin_services, "leaver@aquoris.test")).is_active
    assert (await sign_in(anon, "leaver@aquoris.test", "a-good-password")).status_code == 400


async def test_change_password(admin: httpx.AsyncClient, anon: httpx.AsyncClient, admin_services: Services) -> None:
    await create(admin, "rotate@aquoris.test")
    target = await find(admin_services, "rotate@aquoris.test")
    path = f"/admin/admin-user/{target.id}/password"
    token = await page_token(admin, path)
    mismatch = await admin.post(path, data={"password": "new-password-1", "confirm": "other", "csrf_token": token})
    assert mismatch.status_code == 400 and "The two passwords differ." in mismatch.text
    too_long = await admin.post(path, data={"password": "x" * 80, "confirm": "x" * 80, "csrf_token": token})
    assert too_long.status_code == 400 and "at most 72 bytes" in too_long.text
    done = await admin.post(path, data={"password": "new-password-1", "confirm": "new-password-1", "csrf_token": token})
    assert done.status_code == 303
    assert (await sign_in(anon, "rotate@aquoris.test", "new-password-1")).status_code == 302
    async with admin_services.db.session() as session:
        row = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.action == "admin.password_changed", AuditLog.entity_id == str(target.id)
                )
            )
        ).scalar_one()
    assert "new-password-1" not in str(row.details)
