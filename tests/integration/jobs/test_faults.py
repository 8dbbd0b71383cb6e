"""Faults with real processes: a worker killed with SIGKILL mid-batch, PostgreSQL stopped under webhook traffic."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from payment import migrate
from payment.config import DEV_STRIPE_WEBHOOK_SECRET, Settings
from payment.embedded_pg import EmbeddedPostgres
from payment.jobs import stripe_events
from payment.models import AuditLog, StripeEvent, Subscription
from payment.runtime import Services
from payment.stripe.handlers import HANDLED_TYPES
from payment.stripe.inbox import store_event
from tests.integration.jobs.conftest import WorkerProcess, eventually, running_worker
from tests.support.app import running_services, serve_service
from tests.support.db import settings_for
from tests.support.stripe import World, sign

pytestmark = pytest.mark.slow


async def _history(world: World, customers: int) -> list[dict[str, Any]]:
    """Real events: each customer subscribes, then everyone renews once."""
    plan = await world.plan()
    for _ in range(customers):
        await world.subscribe(await world.customer(), plan)
    await world.advance(31)
    return [e for e in await world.events() if e["type"] in HANDLED_TYPES]


async def _counts(services: Services, row_ids: list[int]) -> tuple[int, int]:
    """(events handled, audit rows of applied events) for these stored events."""
    async with services.db.session() as session:
        handled = await session.scalar(
            select(func.count())
            .select_from(StripeEvent)
            .where(StripeEvent.id.in_(row_ids), StripeEvent.status == "handled")
        )
        applied = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action.like("stripe.%"), AuditLog.details["event_row_id"].as_integer().in_(row_ids))
        )
    return int(handled or 0), int(applied or 0)


async def test_worker_killed_mid_batch_then_restarted_applies_each_event_exactly_once(
    settings: Settings, world: World, job_queue: None
) -> None:
    services = world.services
    history = await _history(world, customers=6)
    row_ids: list[int] = []
    for event in history:
        async with services.db.transaction() as session:
            row_ids.append((await store_event(session, event)).id)
        await stripe_events.enqueue_event(services, row_ids[-1])

    first = WorkerProcess(settings, concurrency=2).start()
    try:
        await eventually(lambda: _some_handled(services, row_ids), timeout=60, every=0.05)
        first.signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()
    handled, _ = await _counts(services, row_ids)
    assert 0 < handled < len(row_ids), "the kill should land in the middle of the batch"

    # the restart as operators run it: 128 slots over 4 fetch loops, taking back the dead worker's jobs
    second = WorkerProcess(settings, concurrency=None).start()
    try:

        async def all_applied() -> bool:
            return (await _counts(services, row_ids))[0] == len(row_ids)

        try:
            await eventually(all_applied, timeout=90, every=0.5)
        except AssertionError:  # say what is stuck
            async with services.db.session() as session:
                jobs = (
                    await session.execute(
                        text(
                            "SELECT status, attempts, worker_id, task_name FROM procrastinate_jobs"
                            " WHERE status <> 'todo'"
                        )
                    )
                ).all()
                rows = (
                    await session.execute(
                        select(StripeEvent.status, StripeEvent.last_error, func.count())
                        .where(StripeEvent.id.in_(row_ids))
                        .group_by(StripeEvent.status, StripeEvent.last_error)
                    )
                ).all()
            second.signal(signal.SIGTERM)
            raise AssertionError(f"jobs {jobs} events {rows} worker: {second.output()[-3000:]}") from None

        async def none_stalled() -> bool:  # the dead worker's jobs were recovered, not left "doing"
            async with services.db.session() as session:
                return not await session.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"))

        await eventually(none_stalled, timeout=60, every=0.5)
    finally:
        second.signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 40)
        second.stop()
    handled, applied = await _counts(services, row_ids)
    assert handled == applied == len(row_ids)  # exactly once each
    async with services.db.session() as session:
        subs = (
            await session.scalars(
                select(Subscription.status).where(
                    Subscription.stripe_subscription_id.in_(
                        {e["data"]["object"]["id"] for e in history if e["type"].startswith("customer.subscription")}
                    )
                )
            )
        ).all()
    assert sorted(subs) == ["active"] * 6


async def _some_handled(services: Services, row_ids: list[int]) -> bool:
    return (await _counts(services, row_ids))[0] >= 3


async def test_postgres_down_under_webhook_traffic_answers_5xx_then_loses_nothing(
    own_postgres: EmbeddedPostgres, sandbox: str
) -> None:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    settings = settings_for(url, stripe_api_base=sandbox)
    async with running_services(settings) as own:  # customers and plans of this database
        history = await _history(World(own, sandbox), customers=2)
    filler = [
        {
            "id": f"evt_fault_fill_{i}",
            "object": "event",
            "type": "customer.updated",
            "created": int(time.time()),
            "data": {"object": {"id": f"cus_fill_{i}", "object": "customer"}},
        }
        for i in range(30)
    ]
    traffic = [*history, *filler]
    bodies = {e["id"]: json.dumps(e, default=str).encode() for e in traffic}
    server = serve_service(settings).start()
    answers: dict[str, list[int]] = {e["id"]: [] for e in traffic}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:

            async def deliver(event_id: str) -> int:
                body = bodies[event_id]
                response = await http.post(
                    "/api/v1/webhooks/stripe",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(body, DEV_STRIPE_WEBHOOK_SECRET),
                    },
                )
                answers[event_id].append(response.status_code)
                return response.status_code

            ids = list(bodies)
            for event_id in ids[:15]:
                assert await deliver(event_id) == 200
            await asyncio.to_thread(own_postgres.stop)
            during = [await deliver(event_id) for event_id in ids[15:30]]
            health = await http.get("/api/health")
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            assert during and all(code == 503 for code in during)
            await asyncio.to_thread(own_postgres.start)
            # Stripe retries every event that did not get a 2xx; some also arrive twice
            for event_id in ids[15:]:
                deadline = time.monotonic() + 30
                while await deliver(event_id) != 200:
                    assert time.monotonic() < deadline, answers[event_id]
                    await asyncio.sleep(0.2)
            for event_id in ids[:5]:
                assert await deliver(event_id) == 200
            assert (await http.get("/api/health")).status_code == 200
    finally:
        server.stop()

    async with running_worker(settings, concurrency=2) as services:
        async with services.db.session() as session:
            stored = (
                await session.execute(
                    select(StripeEvent.stripe_event_id, func.count()).group_by(StripeEvent.stripe_event_id)
                )
            ).all()
        assert {event_id: n for event_id, n in stored} == dict.fromkeys(bodies, 1)

        async def applied() -> bool:
            async with services.db.session() as session:
                left = await session.scalar(
                    select(func.count()).select_from(StripeEvent).where(StripeEvent.status.in_(("pending", "failed")))
                )
            return left == 0

        await eventually(applied, timeout=60, every=0.5)
        async with services.db.session() as session:
            statuses = (await session.scalars(select(Subscription.status))).all()
    assert sorted(statuses) == ["active", "active"]


OUTAGE_SECONDS = 30.0


async def test_the_worker_outlives_a_30_s_postgres_outage_under_webhook_traffic_and_applies_every_event(
    own_postgres: EmbeddedPostgres, sandbox: str
) -> None:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    settings = settings_for(url, stripe_api_base=sandbox)
    async with running_services(settings) as own:
        history = await _history(World(own, sandbox), customers=2)
    bodies = {e["id"]: json.dumps(e, default=str).encode() for e in history}
    ids = list(bodies)
    # `payment worker` with its default slots (4 fetch loops, each with its own connections), started once, never
    # by hand again
    worker = WorkerProcess(settings, concurrency=None).start()
    server = serve_service(settings).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http, running_services(settings) as own:

            async def deliver(event_id: str) -> int:
                body = bodies[event_id]
                response = await http.post(
                    "/api/v1/webhooks/stripe",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(body, DEV_STRIPE_WEBHOOK_SECRET),
                    },
                )
                return response.status_code

            async def left() -> int:
                async with own.db.session() as session:
                    return int(
                        await session.scalar(
                            select(func.count())
                            .select_from(StripeEvent)
                            .where(StripeEvent.status.in_(("pending", "failed")))
                        )
                        or 0
                    )

            half = len(ids) // 2
            for event_id in ids[:half]:
                assert await deliver(event_id) == 200
            await own.db.dispose()
            await asyncio.to_thread(own_postgres.stop)
            stopped = time.monotonic()
            # the outage: Stripe keeps sending (and gets 503s); the worker must still be running when it ends
            refused: list[int] = []
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                assert worker.process is not None and worker.process.poll() is None, worker.output()
                refused.append(await deliver(ids[half + len(refused) % (len(ids) - half)]))
                await asyncio.sleep(0.5)
            assert refused and set(refused) == {503}
            await asyncio.to_thread(own_postgres.start)
            for event_id in ids[half:]:  # Stripe's retries
                deadline = time.monotonic() + 30
                while await deliver(event_id) != 200:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)

            async def all_applied() -> bool:
                return await left() == 0

            await eventually(all_applied, timeout=120, every=0.5)
            async with own.db.session() as session:
                statuses = (await session.scalars(select(Subscription.status))).all()
                stored = await session.scalar(select(func.count()).select_from(StripeEvent))
            assert sorted(statuses) == ["active", "active"] and stored == len(ids)
        assert worker.process is not None and worker.process.poll() is None  # the same process did it all
        worker.signal(signal.SIGTERM)
        assert worker.wait(40) == 0
        # it noticed the outage (Procrastinate either raised or stopped on its own) and started itself again
        assert "starting it again in" in worker.output()
    finally:
        server.stop()
        worker.stop()


async def test_the_worker_exits_non_zero_when_waiting_cannot_help(own_postgres: EmbeddedPostgres, sandbox: str) -> None:
    # a database without the schema: no outage to wait out, so the worker gives up with a clear message
    settings = settings_for(own_postgres.url("payment"), stripe_api_base=sandbox)
    worker = WorkerProcess(settings, concurrency=1).start()
    try:
        code = worker.wait(60)
        output = worker.output()
        assert code != 0 and "the worker gave up" in output, output
        assert "Traceback" not in output and "SELECT" not in output
    finally:
        worker.stop()


async def test_the_in_process_worker_of_payment_dev_survives_a_database_blip(
    own_postgres: EmbeddedPostgres, sandbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    settings = settings_for(url, stripe_api_base=sandbox)
    async with running_services(settings) as own:
        [event, *_] = await _history(World(own, sandbox), customers=1)
    async with running_worker(settings, concurrency=1):
        task = next(t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "run_worker")  # type: ignore[union-attr]
        await asyncio.to_thread(own_postgres.stop)

        async def noticed() -> bool:
            return "lost the database" in caplog.text or "stopped on its own" in caplog.text

        await eventually(noticed, timeout=60, every=0.2)
        await asyncio.to_thread(own_postgres.start)
        assert not task.done()
        async with running_services(settings) as own, own.jobs.open_async():
            async with own.db.transaction() as session:
                row_id = (await store_event(session, event)).id
            await stripe_events.enqueue_event(own, row_id)

            async def applied() -> bool:
                async with own.db.session() as session:
                    row = await session.get(StripeEvent, row_id)
                    return row is not None and row.status in ("handled", "ignored")

            await eventually(applied, timeout=90, every=0.5)
        assert not task.done()  # the worker that lost its database is the one that applied the event
