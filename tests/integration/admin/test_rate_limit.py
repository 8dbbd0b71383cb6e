"""Sign-in attempts are limited per client IP through the database, so every app process counts the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from payment.bootstrap import create_app
from payment.config import Settings
from payment.runtime import Services
from tests.integration.admin.conftest import ADMIN_EMAIL, sign_in
from tests.support.app import asgi_client, running_services
from tests.support.db import settings_for


@pytest.fixture(scope="module")
def admin_settings(database_url: str) -> Settings:
    return settings_for(database_url, login_rate_limit=5)


@pytest.fixture
async def second_process(admin_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another app instance with its own engine and pools, on the same database (as a second process would be)."""
    async with running_services(admin_settings) as services, asgi_client(create_app(services=services)) as client:
        yield client


async def test_the_sixth_attempt_in_a_minute_is_refused_across_two_app_processes(
    anon: httpx.AsyncClient, second_process: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    outcomes = []
    for attempt in range(5):
        client = anon if attempt % 2 == 0 else second_process
        outcomes.append((await sign_in(client, ADMIN_EMAIL, f"wrong-{attempt}")).status_code)
    assert outcomes == [400] * 5
    refused = await sign_in(second_process)  # right password, but the sixth attempt from this IP
    assert refused.status_code == 429
    assert "Too many sign-in attempts" in refused.text
    assert f'value="{ADMIN_EMAIL}"' in refused.text  # the email typed is kept
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await sign_in(anon)).status_code == 429
    assert (await anon.get("/admin/app/list")).status_code == 302  # nothing let it in


async def test_attempts_older_than_a_minute_no_longer_count(
    anon: httpx.AsyncClient, root_admin: int, admin_services: Services
) -> None:
    from sqlalchemy import text

    async with admin_services.db.transaction() as session:
        await session.execute(text("UPDATE rate_limit_hits SET at = at - interval '61 seconds'"))
    assert (await sign_in(anon)).status_code == 302


async def test_the_limit_is_per_ip(admin_services: Services, root_admin: int) -> None:
    async with admin_services.db.transaction() as session:
        from sqlalchemy import text

        await session.execute(text("DELETE FROM rate_limit_hits"))
    app = create_app(services=admin_services)
    clients = []
    for ip in ("10.0.0.1", "10.0.0.2"):
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
    try:
        for _ in range(5):
            await sign_in(clients[0], ADMIN_EMAIL, "wrong")
        assert (await sign_in(clients[0])).status_code == 429
        assert (await sign_in(clients[1])).status_code == 302
    finally:
        for client in clients:
            await client.aclose()
