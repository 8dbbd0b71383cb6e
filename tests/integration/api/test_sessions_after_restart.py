"""The pool keeps no pre-ping: after PostgreSQL restarts, a client app's first request still succeeds (the dropped
pooled connection is retried once on a fresh one) and nothing is stored twice."""

from __future__ import annotations

import tempfile

from sqlalchemy import func, select

from payment import migrate
from payment.apps import service as apps
from payment.bootstrap import create_app
from payment.config import DEV_SECRET_KEY
from payment.embedded_pg import EmbeddedPostgres
from payment.models import AuditLog, BillingSession
from tests.support.app import asgi_client, running_services
from tests.support.db import _tmp_root, settings_for


async def test_the_first_session_after_a_postgres_restart_is_created_once() -> None:
    with tempfile.TemporaryDirectory(dir=_tmp_root()) as folder:
        server = EmbeddedPostgres(folder)
        server.start()
        try:
            server.create_database("payment")
            await migrate.upgrade_async(server.url("payment"))
            settings = settings_for(server.url("payment"))
            async with running_services(settings) as services, asgi_client(create_app(services=services)) as client:
                async with services.db.transaction() as session:
                    issued = await apps.create_app(
                        session,
                        slug="vega",
                        name="Vega",
                        return_url="https://v.example/",
                        secret_key=DEV_SECRET_KEY,
                        actor="test",
                    )
                headers = {"Authorization": f"Bearer {issued.api_key}"}
                body = {"externalUserId": "restart-user", "appSlug": "vega"}
                assert (await client.post("/api/v1/sessions", json=body, headers=headers)).status_code == 201

                server.stop()
                server.start()
                response = await client.post("/api/v1/sessions", json=body, headers=headers)
                assert response.status_code == 201, response.text

                async with services.db.session() as session:
                    sessions = await session.scalar(select(func.count()).select_from(BillingSession))
                    audited = await session.scalar(
                        select(func.count()).select_from(AuditLog).where(AuditLog.action == "billing_session.created")
                    )
                assert (sessions, audited) == (2, 2)
        finally:
            server.stop()
