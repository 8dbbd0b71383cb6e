"""The client address (sign-in rate limit, audit log) comes from the socket, or from a trusted proxy's header only.

The app runs under the same uvicorn configuration `payment serve` uses (payment.serving.make_server), on loopback.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select, text

from payment.bootstrap import create_app
from payment.config import Settings
from payment.embedded_pg import free_port
from payment.models import AuditLog
from payment.runtime import Services
from payment.serving import make_server
from tests.integration.admin.conftest import ADMIN_EMAIL, csrf_from
from tests.support.db import settings_for

LIMIT = 5


@pytest.fixture(scope="module")
def admin_settings(database_url: str) -> Settings:
    return settings_for(database_url, login_rate_limit=LIMIT)


@contextmanager
def served(settings: Settings, forwarded_allow_ips: str) -> Iterator[str]:
    """`payment serve`'s uvicorn (proxy headers on, trusting `forwarded_allow_ips`) in a thread; yields its URL."""
    port = free_port()
    server = make_server(
        create_app(settings.replace(base_url=f"http://127.0.0.1:{port}")),
        "127.0.0.1",
        port,
        log_level="warning",
        forwarded_allow_ips=forwarded_allow_ips,
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


async def fresh_limits(services: Services) -> None:
    async with services.db.transaction() as session:
        await session.execute(text("DELETE FROM rate_limit_hits"))
        await session.execute(text("DELETE FROM audit_log WHERE action = 'admin.sign_in_failed'"))


async def attempts(url: str, forwarded_for: list[str]) -> list[int]:
    """One wrong sign-in per X-Forwarded-For value, each from a fresh browser."""
    statuses = []
    for value in forwarded_for:
        async with httpx.AsyncClient(base_url=url) as browser:
            page = await browser.get("/admin/login")
            response = await browser.post(
                "/admin/login",
                headers={"X-Forwarded-For": value},
                data={"username": ADMIN_EMAIL, "password": "wrong-password", "csrf_token": csrf_from(page.text)},
            )
            statuses.append(response.status_code)
    return statuses


async def recorded_ips(services: Services) -> set[str | None]:
    async with services.db.session() as session:
        rows = await session.scalars(select(AuditLog.ip).where(AuditLog.action == "admin.sign_in_failed"))
        return set(rows)


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    admin_settings: Settings, admin_services: Services, root_admin: int
) -> None:
    await fresh_limits(admin_services)
    forged = [f"198.51.100.{n}" for n in range(LIMIT + 3)]
    with served(admin_settings, forwarded_allow_ips="10.255.255.1") as url:  # a proxy that is not us
        statuses = await attempts(url, forged)
    assert statuses == [400] * LIMIT + [429] * 3
    assert await recorded_ips(admin_services) == {"127.0.0.1"}


async def test_behind_a_trusted_proxy_that_appends_the_limit_holds_on_the_real_client(
    admin_settings: Settings, admin_services: Services, root_admin: int
) -> None:
    await fresh_limits(admin_services)
    # the client writes whatever it likes; the proxy (127.0.0.1 here) appends the address it saw
    headers = [f"198.51.100.{n}, 203.0.113.9" for n in range(LIMIT + 3)]
    with served(admin_settings, forwarded_allow_ips="127.0.0.1") as url:
        statuses = await attempts(url, headers)
        other_client = await attempts(url, ["203.0.113.10"])
    assert statuses == [400] * LIMIT + [429] * 3
    assert other_client == [400]  # the limit is per real client, not per proxy
    assert await recorded_ips(admin_services) == {"203.0.113.9", "203.0.113.10"}
