"""GET /api/health: 200 when the database answers, 503 degraded when it does not, quickly either way."""

from __future__ import annotations

import tempfile
import time

import httpx

from payment import migrate
from payment.bootstrap import create_app
from payment.embedded_pg import EmbeddedPostgres
from tests.support.app import asgi_client, running_services
from tests.support.db import _tmp_root, settings_for


async def test_health_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["cache-control"] == "no-store"


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
                assert response.json() == {"status": "degraded", "database": "unreachable"}

                server.start()
                assert (await client.get("/api/health")).status_code == 200
        finally:
            server.stop()
