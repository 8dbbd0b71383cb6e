"""A card that exceeds its statement timeout shows `--`; the other cards and the page still show."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text

from payment.bootstrap import create_app
from payment.dashboard.service import compute_dashboard, run_card
from payment.runtime import Services
from tests.integration.dashboard import dataset
from tests.integration.dashboard.conftest import dashboard_state, sign_in
from tests.integration.dashboard.test_page import card_text
from tests.support.app import asgi_client

# the revenue card and chart read refunds; holding its lock makes exactly those statements wait past their timeout
SHORT = {"revenue": 0.3, "revenue_history": 0.3}


@asynccontextmanager
async def refunds_locked(services: Services) -> AsyncIterator[None]:
    async with services.db.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("LOCK TABLE refunds IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await transaction.rollback()


async def test_a_timed_out_card_has_no_value_and_the_others_do(
    services: Services, known_data: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="payment.dashboard.service")
    async with refunds_locked(services):
        board = await compute_dashboard(services.db, now=dataset.NOW, timeouts=SHORT)

    assert (board.revenue.value, board.revenue.error) == (None, "timeout")
    assert (board.revenue_history.value, board.revenue_history.error) == (None, "timeout")
    assert board.revenue.seconds < 3
    assert board.mrr.value is not None and board.mrr.value.amounts == dataset.MRR
    assert board.active.value is not None and board.churn.value is not None and board.mrr_history.ok
    logged = caplog.text
    assert "dashboard card revenue timed out" in logged
    assert "SELECT" not in logged and "2026-10-21" not in logged  # no SQL text, no parameters


async def test_the_page_shows_dashes_for_the_timed_out_card_only(
    services: Services, known_data: dict[str, Any]
) -> None:
    app = create_app(services=services)
    state = dashboard_state(app)
    state.now, state.timeouts = dataset.NOW, SHORT
    async with asgi_client(app) as client:
        await sign_in(client, known_data["admin_email"])
        async with refunds_locked(services):
            response = await client.get("/admin/")

    assert response.status_code == 200
    html = response.text
    assert card_text(html, "revenue").startswith("Revenue (30 days) --")
    assert 'data-card="revenue" data-available="no"' in html
    assert 'data-chart="revenue-chart" data-available="no"' in html
    for key in ("mrr", "active", "churn"):
        assert f'data-card="{key}" data-available="yes"' in html
        assert "--" not in card_text(html, key)
    assert "THB 1,146.18" in card_text(html, "mrr")
    assert 'data-chart="mrr-chart" data-available="yes"' in html
    # the formula is still stated under the dashes
    assert "refunds succeeded by refund date" in card_text(html, "revenue")


async def test_a_failing_card_is_reported_as_failed_without_its_sql_or_message(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(session: Any) -> Any:
        await session.execute(text("SELECT 1 / (SELECT count(*) - count(*) FROM plans WHERE slug = 'secret-slug')"))

    caplog.set_level(logging.WARNING, logger="payment.dashboard.service")
    outcome = await run_card(services.db, "broken", broken, timeout_seconds=5)

    assert (outcome.value, outcome.error) == (None, "failed")
    assert "dashboard card broken failed" in caplog.text
    assert "secret-slug" not in caplog.text and "division" not in caplog.text
