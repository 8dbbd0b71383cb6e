"""Overload and outage on every surface: a 503 with Retry-After (problem+json in the API, a friendly page in billing
and the admin), never a 500 or a traceback; the health check tells a busy app from a sick database."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from payment import migrate
from payment.admins import service as admins
from payment.bootstrap import create_app
from payment.embedded_pg import EmbeddedPostgres
from payment.runtime import Services
from tests.support import factories
from tests.support.app import asgi_client, running_services, serve_in_thread
from tests.support.db import settings_for
from tests.support.stripe import stripe_price

ADMIN_EMAIL, ADMIN_PASSWORD = "ops@aquoris.test", "overload-admin-password"
CSRF = re.compile(r'name="csrf(?:_token)?" value="([^"]+)"')


@dataclass
class Scene:
    api_key: str
    billing_url: str
    services: Services


@pytest.fixture
async def scene(own_postgres: EmbeddedPostgres, sandbox: str) -> AsyncIterator[Scene]:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    settings = settings_for(url, stripe_api_base=sandbox, db_pool_size=1, db_pool_timeout_seconds=1)
    async with running_services(settings) as services:
        price = await stripe_price(services.stripe, name="Aquoris PRO", amount=29900)
        async with services.db.transaction() as session:
            app, key = await factories.create_app(session, slug="vega", name="Vega")
            await factories.create_plan(session, slug="pro", name="Pro", price_cents=29900, stripe_price_id=price)
            await admins.create_admin(session, email=ADMIN_EMAIL, name="Ops", password=ADMIN_PASSWORD, actor="test")
        async with asgi_client(create_app(services=services)) as client:
            opened = await client.post(
                "/api/v1/sessions",
                headers={"Authorization": f"Bearer {key}"},
                json={"externalUserId": "u-1", "appSlug": app.slug},
            )
            assert opened.status_code == 201, opened.text
        yield Scene(key, str(httpx.URL(opened.json()["url"]).path), services)


def service_lines(caplog: pytest.LogCaptureFixture) -> str:
    """What the service logged (the test's own HTTP client logs its requests too: not ours)."""
    return "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in service_lines(caplog)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def unavailable(response: httpx.Response, *, api: bool) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert int(response.headers["retry-after"]) > 0
    if api:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unavailable" and response.json()["status"] == 503
    else:
        assert "Please try again in a moment" in response.text


async def test_database_down_is_a_503_on_every_surface(
    scene: Scene, own_postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        asgi_client(create_app(services=scene.services)) as browser,
        asgi_client(create_app(services=scene.services)) as admin,
        asgi_client(create_app(services=scene.services)) as anon,
    ):
        page = await browser.get(scene.billing_url)
        assert page.status_code == 200
        billing_csrf = CSRF.search(page.text)
        login = await admin.get("/admin/login")
        admin_csrf = CSRF.search(login.text)
        assert billing_csrf and admin_csrf
        signed_in = await admin.post(
            "/admin/login",
            data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": admin_csrf.group(1)},
        )
        assert signed_in.status_code == 302
        anon_csrf = CSRF.search((await anon.get("/admin/login")).text)
        assert anon_csrf
        await scene.services.db.dispose()
        await asyncio.to_thread(own_postgres.stop)
        caplog.clear()

        api = {"Authorization": f"Bearer {scene.api_key}"}
        unavailable(
            await browser.post("/api/v1/sessions", headers=api, json={"externalUserId": "u-2", "appSlug": "vega"}),
            api=True,
        )
        unavailable(await browser.get("/api/v1/customers/u-1/subscription?appSlug=vega", headers=api), api=True)
        unavailable(await browser.get(scene.billing_url), api=False)
        unavailable(
            await browser.post(f"{scene.billing_url}/subscribe", data={"csrf": billing_csrf.group(1), "plan": "pro"}),
            api=False,
        )
        unavailable(await admin.get("/admin/app/list"), api=False)
        unavailable(
            await anon.post(
                "/admin/login",
                data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": anon_csrf.group(1)},
            ),
            api=False,
        )
        health = await browser.get("/api/health")
        assert health.status_code == 503 and health.json()["database"] == "unreachable"
    no_tracebacks(caplog)
    assert "answered 503: the database is unreachable" in service_lines(caplog)
    assert scene.billing_url.split("/")[-1] not in service_lines(caplog)  # the token is redacted in our lines


async def test_a_pool_wait_beyond_its_bound_is_a_503_while_health_stays_truthful(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    async with asgi_client(create_app(services=scene.services)) as client:
        engine = scene.services.db.engine
        async with engine.connect() as taken:  # pool_size 1, no overflow: the only connection is taken
            assert taken is not None
            busy = await client.get(scene.billing_url)
            unavailable(busy, api=False)
            assert busy.headers["retry-after"] == "2"
            unavailable(
                await client.get(
                    "/api/v1/customers/u-1/subscription?appSlug=vega",
                    headers={"Authorization": f"Bearer {scene.api_key}"},
                ),
                api=True,
            )
            health = await client.get("/api/health")
            assert health.status_code == 200 and health.json()["database"] == "ok"  # busy is not sick
        assert (await client.get(scene.billing_url)).status_code == 200
    no_tracebacks(caplog)


async def test_500_concurrent_connections_get_answers_never_a_500_or_a_traceback(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = {"Authorization": f"Bearer {scene.api_key}"}
    paths = [scene.billing_url, "/api/v1/customers/u-1/subscription?appSlug=vega", "/admin/login"]
    with serve_in_thread(create_app(scene.services.settings)) as server:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:

            async def one(n: int) -> int:
                response = await http.get(paths[n % len(paths)], headers=api)
                if response.status_code == 503:
                    assert int(response.headers["retry-after"]) > 0
                return response.status_code

            load = asyncio.gather(*(one(n) for n in range(500)))
            health = [(await http.get("/api/health")).status_code for _ in range(3)]
            statuses = Counter(await load)
            health.append((await http.get("/api/health")).status_code)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0
    assert health == [200] * 4
    no_tracebacks(caplog)
