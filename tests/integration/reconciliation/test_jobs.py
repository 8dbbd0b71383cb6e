"""The check as a job: nightly by default (configurable), one lock for the nightly and the on-demand run, and a
drift open for more than a day reported to Sentry (through the error log) once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from payment.config import Settings
from payment.jobs.app import create_job_app
from payment.models import Drift, utcnow
from payment.reconciliation.check import CHECK_LOCK, CHECK_NOW_TASK, report_stale
from payment.runtime import Services
from tests.support import factories


def _gap_seconds(settings: Settings) -> int:
    app = create_job_app(settings)
    periodic = next(
        p for p in app.periodic_registry.periodic_tasks.values() if p.task.name == "payment:reconcile_with_stripe"
    )
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    ticks = [periodic.croniter.get_next(float, start_time=start)]
    ticks.append(periodic.croniter.get_next(float, start_time=ticks[-1]))
    assert periodic.task.lock == CHECK_LOCK
    assert app.tasks[CHECK_NOW_TASK].lock == CHECK_LOCK
    [gap] = {round(b - a) for a, b in pairwise(ticks)}
    return int(gap)


def test_the_check_runs_nightly_by_default_and_when_configured() -> None:
    url = "postgresql://nobody@127.0.0.1/none"
    assert _gap_seconds(Settings(database_url=url)) == 24 * 3600
    assert _gap_seconds(Settings(database_url=url, reconciliation_cron="*/30 * * * *")) == 1800


async def _drift(services: Services, *, seen: datetime, object_id: str) -> int:
    async with services.db.transaction() as session:
        customer = await factories.create_customer(session)
        drift = Drift(
            kind="subscription_missing",
            stripe_object_id=object_id,
            customer_id=customer.id,
            ours={},
            theirs={"status": "active"},
            expected_event="customer.subscription.created",
            first_seen_at=seen,
            last_seen_at=utcnow(),
        )
        session.add(drift)
        await session.flush()
        return drift.id


async def test_a_drift_open_over_a_day_is_reported_once(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    old = await _drift(services, seen=utcnow() - timedelta(days=1, minutes=5), object_id="sub_stale_report")
    await _drift(services, seen=utcnow() - timedelta(hours=20), object_id="sub_recent_report")
    with caplog.at_level(logging.ERROR, logger="payment.reconciliation.check"):
        assert await report_stale(services.db) == 1
        assert await report_stale(services.db) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [errors[0]] and f"#{old} " in errors[0] and "sub_stale_report" in errors[0]
    async with services.db.session() as session:
        reported = await session.scalar(select(Drift.reported_at).where(Drift.id == old))
    assert reported is not None
