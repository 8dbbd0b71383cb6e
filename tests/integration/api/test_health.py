"""GET /api/health: 200 when the database answers, 503 degraded when it does not, quickly either way."""

from __future__ import annotations

import dataclasses
import tempfile
import time

import httpx

from payment import migrate
from payment.bootstrap import create_app
from payment.embedded_pg import EmbeddedPostgres
from payment.runtime import Services
from tests.support.app import asgi_client, running_services
from tests.support.db import _tmp_root, settings_for


async def test_health_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert response.headers["cache-control"] == "no-store"


async def test_health_says_when_end_users_cannot_be_emailed_without_failing_for_it(services: Services) -> None:
    assert services.settings.smtp_url is None
    async with asgi_client(create_app(services=services)) as client:
        response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["mail"]) == ("ok", "not_configured")
    assert body["mail_problem"].startswith("SMTP_URL is not set: end users' notices")
    mailing = dataclasses.replace(services, settings=services.settings.replace(smtp_url="smtp://127.0.0.1:2525"))
    async with asgi_client(create_app(services=mailing)) as client:
        assert (await client.get("/api/health")).json() == {"status": "ok", "database": "ok", "mail": "ok"}


async def test_health_degrades_while_the_database_is_stopped_and_recovers() -> None:
    with tempfile.TemporaryDirectory(dir=_tmp_root()) as folder:
        server = EmbeddedPostgres(folder)
        server.start()
        try:
            server.create_database("payment")
            await migrate.upgrade_async(server.url("payment"))
            settings = settings_for(server.url("payment"))
            async with running_services(settings) as services, asgi_client(create_app(services=services)) as client:
                assert (await client.get("/api/health")).status_code == 200

                server.stop()
                started = time.monotonic()
                response = await client.get("/api/health")
                assert time.monotonic() - started < 5
                assert response.status_code == 503
                assert (response.json()["status"], response.json()["database"]) == ("degraded", "unreachable")

                server.start()
                assert (await client.get("/api/health")).status_code == 200
        finally:
            server.stop()
