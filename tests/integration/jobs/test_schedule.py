"""The periodic jobs run when the design says (Procrastinate's optional seconds field is the last one)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from payment.config import Settings
from payment.jobs.app import create_job_app

EXPECTED_SECONDS = {
    "payment:sweep_stripe_events": 10,
    "payment:recover_stalled_jobs": 15,
    "payment:expire_subscriptions": 60,
    "payment:catch_up_stripe_events": 300,
    "payment:issue_documents": 60,
    "payment:deliver_webhooks": 2,
}


def test_periodic_jobs_run_at_their_intervals() -> None:
    app = create_job_app(Settings(database_url="postgresql://nobody@127.0.0.1/none"))
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    found = {}
    for periodic in app.periodic_registry.periodic_tasks.values():
        ticks = [periodic.croniter.get_next(float, start_time=start)]
        for _ in range(3):
            ticks.append(periodic.croniter.get_next(float, start_time=ticks[-1]))
        gaps = {round(b - a) for a, b in pairwise(ticks)}
        found[periodic.task.name] = gaps.pop() if len(gaps) == 1 else sorted(gaps)
    assert {name: found[name] for name in EXPECTED_SECONDS} == EXPECTED_SECONDS
    assert "payment:purge_billing_sessions" in found
    assert found["payment:purge_form_submissions"] == 24 * 3600
