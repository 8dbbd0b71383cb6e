"""Admin panel tests: the whole app over ASGI on this module's database, signed in through the real login form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from payment.bootstrap import create_app
from payment.config import Settings
from payment.runtime import Services
from tests.support.app import asgi_client, running_services
from tests.support.db import settings_for

ADMIN_EMAIL = "root@aquoris.test"
ADMIN_PASSWORD = "correct-horse-battery"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture(scope="module")
def admin_settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture(scope="module")
async def admin_services(admin_settings: Settings) -> AsyncIterator[Services]:
    async with running_services(admin_settings) as services:
        yield services


@pytest.fixture(scope="module")
async def root_admin(admin_services: Services) -> int:
    """One admin account for the module (committed, since the app under test uses its own connections)."""
    from payment.admins import service as admins

    async with admin_services.db.transaction() as session:
        existing = await admins.find_by_email(session, ADMIN_EMAIL)
        if existing is not None:
            return existing.id
        admin = await admins.create_admin(
            session, email=ADMIN_EMAIL, name="Root", password=ADMIN_PASSWORD, actor="test"
        )
        return admin.id


@pytest.fixture
async def anon(admin_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client that is not signed in."""
    async with asgi_client(create_app(services=admin_services)) as client:
        yield client


@pytest.fixture
async def anon_other(admin_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A second, separate browser."""
    async with asgi_client(create_app(services=admin_services)) as client:
        yield client


async def sign_in(
    client: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    page = await client.get("/admin/login")
    return await client.post(
        "/admin/login", data={"username": email, "password": password, "csrf_token": csrf_from(page.text)}
    )


@pytest.fixture(scope="module")
async def admin(admin_services: Services, root_admin: int) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the module's admin once for the module (bcrypt is slow on purpose); tests that sign
    out use `anon` and sign in themselves."""
    async with asgi_client(create_app(services=admin_services)) as client:
        response = await sign_in(client)
        assert response.status_code == 302, response.text
        yield client


async def page_token(client: httpx.AsyncClient, path: str = "/admin/") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_from(response.text)
