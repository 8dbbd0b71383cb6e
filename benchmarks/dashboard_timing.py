"""Time the dashboard on a seeded database: each card alone, then the whole landing page through the admin app."""

from __future__ import annotations

import os
import re
import statistics
import time
from typing import Any

import httpx

from payment.admins import service as admins
from payment.bootstrap import build_services, create_app
from payment.config import Settings
from payment.dashboard.service import CARDS, run_card
from payment.models import utcnow

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms   (min {min(values) * 1000:7.1f}, "
        f"max {max(values) * 1000:7.1f})"
    )


async def _admin(services: Any) -> None:
    async with services.db.transaction() as session:
        if await admins.find_by_email(session, ADMIN_EMAIL) is None:
            await admins.create_admin(
                session, email=ADMIN_EMAIL, name="Bench", password=ADMIN_PASSWORD, actor="benchmark"
            )


async def _signed_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/admin/login")
    data = {"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token:
        data["csrf_token"] = token.group(1)
    response = await client.post("/admin/login", data=data)
    assert response.status_code in (302, 303), response.text[:300]


async def measure(url: str, *, runs: int) -> None:
    settings = Settings(app_env="test", database_url=url, login_rate_limit=1000)
    services = build_services(settings)
    await _admin(services)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} cores, load average {load}")
    print(f"\neach card alone, its own connection and statement timeout ({runs} runs after one warm-up):")
    for name, card in CARDS.items():
        now = utcnow()

        async def bound(session: Any, card: Any = card, now: Any = now) -> Any:
            return await card(session, now=now)

        times: list[float] = []
        for i in range(runs + 1):
            outcome = await run_card(services.db, name, bound, timeout_seconds=10)
            assert outcome.ok, f"{name}: {outcome.error}"
            if i:
                times.append(outcome.seconds)
        print(f"  {name:16s} {_ms(times)}")

    app = create_app(services=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _signed_in(client)
            times = []
            for i in range(runs + 1):
                started = time.perf_counter()
                response = await client.get("/admin/")
                elapsed = time.perf_counter() - started
                assert response.status_code == 200 and 'data-available="no"' not in response.text
                if i:
                    times.append(elapsed)
            print(
                f"\nwhole landing page GET /admin/ (signed in, all cards and charts, rendered HTML):\n"
                f"  {'page':16s} {_ms(times)}"
            )
    await services.db.dispose()
