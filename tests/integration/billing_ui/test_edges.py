"""Billing edges that used to answer 500 or keep working when they should not."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import update

from payment.models import App
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, open_billing
from tests.support.app import ThreadServer
from tests.support.stripe import reset_sandbox


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services, slug="edges")


async def test_a_post_with_more_fields_than_any_form_is_refused_not_a_500(
    client: httpx.AsyncClient, scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = await open_billing(client, scene)
    fields = {f"f{n}": "x" for n in range(25)}
    response = await client.post(f"{path}/subscribe", data={"plan": "pro", **fields})
    assert response.status_code == 413
    assert 'data-testid="friendly-message"' in response.text
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]


async def test_billing_links_of_a_deactivated_app_stop_working(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, _ = await open_billing(client, scene)
    assert (await client.get(path)).status_code == 200
    async with services.db.transaction() as session:
        await session.execute(update(App).where(App.id == scene.app.id).values(is_active=False))
    try:
        page = await client.get(path)
        assert page.status_code == 404 and "Vega" not in page.text
        subscribe = await client.post(f"{path}/subscribe", data={"plan": "pro", "csrf": "x"})
        assert subscribe.status_code in (403, 404) and "checkout" not in subscribe.headers.get("location", "")
        assert (await client.get(f"{path}/status")).status_code == 404
    finally:
        async with services.db.transaction() as session:
            await session.execute(update(App).where(App.id == scene.app.id).values(is_active=True))


async def test_billing_pages_report_browser_errors_through_our_own_origin(
    client: httpx.AsyncClient, scene: Scene
) -> None:
    path, _ = await open_billing(client, scene)
    page = await client.get(path)
    assert '<script src="/api/client-errors.js"></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]  # unchanged: same origin
