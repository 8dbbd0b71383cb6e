"""Apps in the admin: created and edited through the service, key copied and rotated, errors in plain words."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select, text

from payment.apps import service as apps
from payment.errors import Unauthorized
from payment.models import App, AuditLog
from payment.runtime import Services
from tests.integration.admin.conftest import page_token

RAW_DB_WORDS = ("IntegrityError", "asyncpg", "psycopg", "violates", "Traceback", "INSERT INTO", "UPDATE apps")


async def post_form(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    token = await page_token(client, path)
    return await client.post(path, data={**data, "csrf_token": token, "save": "Save"})


async def create(
    client: httpx.AsyncClient, slug: str, name: str = "Vega", url: str = "https://vega.example/settings"
) -> httpx.Response:
    return await post_form(client, "/admin/app/create", {"slug": slug, "name": name, "return_url": url})


async def get_app(services: Services, slug: str) -> App:
    async with services.db.session() as session:
        app = await apps.get_by_slug(session, slug)
        assert app is not None
        return app


async def copy_key(client: httpx.AsyncClient, app: App) -> str:
    token = await page_token(client, "/admin/app/list")
    response = await client.post(f"/admin/app/{app.id}/copy-key", headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["key"])


async def test_create_an_app_then_copy_its_working_key(
    admin: httpx.AsyncClient, admin_services: Services, root_admin: int
) -> None:
    response = await create(admin, "vega")
    assert response.status_code == 302
    listing = await admin.get("/admin/app/list")
    app = await get_app(admin_services, "vega")
    assert app.api_key_hint in listing.text and "Copy key" in listing.text
    key = await copy_key(admin, app)
    assert key not in listing.text  # the list shows only the masked key
    async with admin_services.db.session() as session:
        assert (await apps.authenticate_key(session, key)).slug == "vega"
        actions = (
            (
                await session.execute(
                    select(AuditLog.action).where(
                        AuditLog.entity_type == "app",
                        AuditLog.entity_id == str(app.id),
                        AuditLog.actor == f"admin:{root_admin}",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {"app.created", "app.key_copied"} <= set(actions)


async def test_a_database_copy_does_not_reveal_usable_keys(admin: httpx.AsyncClient, admin_services: Services) -> None:
    await create(admin, "leak-check")
    app = await get_app(admin_services, "leak-check")
    key = await copy_key(admin, app)
    async with admin_services.db.session() as session:
        dump = str(
            (
                await session.execute(text("SELECT row_to_json(apps)::text FROM apps WHERE slug = 'leak-check'"))
            ).scalar_one()
        )
    assert key not in dump and key[4:] not in dump


async def test_rotating_a_key_stops_the_old_one_at_once(admin: httpx.AsyncClient, admin_services: Services) -> None:
    await create(admin, "rotor")
    app = await get_app(admin_services, "rotor")
    old = await copy_key(admin, app)
    token = await page_token(admin, "/admin/app/list")
    response = await admin.post(f"/admin/app/{app.id}/rotate-key", data={"csrf_token": token})
    assert response.status_code == 303
    listing = await admin.get("/admin/app/list")
    assert "the old key no longer works" in listing.text
    new = await copy_key(admin, app)
    assert new != old
    async with admin_services.db.session() as session:
        with pytest.raises(Unauthorized):
            await apps.authenticate_key(session, old)
        assert (await apps.authenticate_key(session, new)).slug == "rotor"
        rotated = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "app.key_rotated", AuditLog.entity_id == str(app.id))
            )
        ).scalar_one()
    assert old not in str(rotated.details) and new not in str(rotated.details)


async def test_rotation_is_never_a_get(admin: httpx.AsyncClient, admin_services: Services) -> None:
    await create(admin, "no-get")
    app = await get_app(admin_services, "no-get")
    response = await admin.get(f"/admin/app/{app.id}/rotate-key")
    assert response.status_code == 405
    assert (await get_app(admin_services, "no-get")).api_key_hash == app.api_key_hash


@pytest.mark.parametrize(
    ("slug", "name", "url", "message"),
    [
        ("s" * 129, "Vega", "https://v.example", "Slug must be at most 128 characters."),
        ("Bad Slug!", "Vega", "https://v.example", "Slug may hold lowercase letters"),
        ("long-name", "n" * 1025, "https://v.example", "Name must be at most 1024 characters."),
        ("ftp-url", "Vega", "ftp://v.example/settings", "Return URL must be an http:// or https:// address."),
        ("js-url", "Vega", "javascript:alert(1)", "Return URL must be an http:// or https:// address."),
    ],
)
async def test_invalid_input_gets_a_clear_error(
    admin: httpx.AsyncClient, slug: str, name: str, url: str, message: str
) -> None:
    response = await create(admin, slug, name, url)
    assert response.status_code == 400
    assert message in response.text
    assert not any(word in response.text for word in RAW_DB_WORDS)


async def test_a_duplicate_slug_is_a_friendly_error(admin: httpx.AsyncClient) -> None:
    assert (await create(admin, "twin")).status_code == 302
    response = await create(admin, "twin")
    assert response.status_code == 400
    assert "An app with slug “twin” already exists." in response.text
    assert not any(word in response.text for word in RAW_DB_WORDS)


async def test_editing_goes_through_the_service_and_is_audited(
    admin: httpx.AsyncClient, admin_services: Services
) -> None:
    await create(admin, "editme")
    app = await get_app(admin_services, "editme")
    path = f"/admin/app/edit/{app.id}"
    page = await admin.get(path)
    assert re.search(r'name="name"[^>]*value="Vega"', page.text)
    bad = await post_form(admin, path, {"name": "Vega 2", "return_url": "mailto:x@example.com", "is_active": "y"})
    assert bad.status_code == 400 and "Return URL must be" in bad.text
    good = await post_form(admin, path, {"name": "Vega 2", "return_url": "https://vega2.example", "is_active": "y"})
    assert good.status_code == 302
    async with admin_services.db.session() as session:
        row = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "app.updated", AuditLog.entity_id == str(app.id))
            )
        ).scalar_one()
    assert row.details == {"name": "Vega 2", "return_url": "https://vega2.example"}
