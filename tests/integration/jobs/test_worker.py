"""A real worker: Stripe (the sandbox) delivers over HTTP to the served app, the worker applies; periodic jobs;
final failures reach Sentry; SIGTERM lets a running job finish."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sqlalchemy import func, select, text

from payment.audit import service as audit
from payment.config import Settings
from payment.embedded_pg import free_port
from payment.models import BillingSession, StripeEvent, Subscription, SubscriptionAdjustment, utcnow
from payment.models.ops import FormSubmission
from payment.runtime import Services
from payment.stripe.inbox import store_event
from tests.integration.jobs.conftest import WorkerProcess, eventually, running_worker
from tests.support import factories
from tests.support.app import serve_service
from tests.support.stripe import World, register_webhook


async def test_stripe_delivers_over_http_and_the_worker_applies_every_event(
    settings: Settings, world: World, job_queue: None
) -> None:
    port = free_port()
    secret = register_webhook(world.sandbox_url, f"http://127.0.0.1:{port}/api/v1/webhooks/stripe")
    server = serve_service(settings.replace(stripe_webhook_secret=secret), port).start()
    try:
        async with running_worker(settings):
            plan = await world.plan()
            customer = await world.customer()
            checkout = await world.subscribe(customer, plan)
            await world.control("POST", "webhooks/flush", json={"timeout": 20})

            async def live() -> bool:
                sub = await world.subscription(checkout["subscription"])
                return sub is not None and sub.status == "active" and len(await world.invoices(customer)) == 1

            await eventually(live)
            first = await world.subscription(checkout["subscription"])
            await world.advance(31)
            await world.control("POST", "webhooks/flush", json={"timeout": 20})

            async def renewed() -> bool:
                sub = await world.subscription(checkout["subscription"])
                return (
                    sub is not None
                    and first is not None
                    and sub.current_period_end is not None
                    and first.current_period_end is not None
                    and sub.current_period_end > first.current_period_end
                    and len(await world.invoices(customer)) == 2
                )

            await eventually(renewed)
    finally:
        server.stop()
    deliveries = (await world.control("GET", "webhooks/deliveries"))["deliveries"]
    assert deliveries and all(d["status"] == 200 for d in deliveries)
    async with world.services.db.session() as session:
        unhandled = await session.scalar(
            select(func.count()).select_from(StripeEvent).where(StripeEvent.status.in_(("pending", "failed")))
        )
    assert unhandled == 0


async def _run_task(services: Services, settings: Settings, task: str, done: Any) -> None:
    await services.jobs.configure_task(task).defer_async(timestamp=int(utcnow().timestamp()))
    async with running_worker(settings, concurrency=1):
        await eventually(done, timeout=20)


async def test_expiry_job_ends_manual_and_granted_subscriptions_at_period_end(
    settings: Settings, services: Services, job_queue: None
) -> None:
    async with services.db.transaction() as session:
        plan = await factories.create_plan(session)
        customer = await factories.create_customer(session)
        ended = await factories.create_subscription(
            session, customer, plan, source="manual", start=utcnow() - timedelta(days=31), days=30
        )
        granted = await factories.create_subscription(
            session, customer, plan, source="grant", start=utcnow() - timedelta(days=10), days=30
        )
        stripe_owned = await factories.create_subscription(
            session, customer, plan, source="stripe", start=utcnow() - timedelta(days=40), days=30
        )

    async def expired() -> bool:
        async with services.db.session() as session:
            return (await session.get(Subscription, ended.id, populate_existing=True)).status == "expired"  # type: ignore[union-attr]

    await _run_task(services, settings, "payment:expire_subscriptions", expired)
    async with services.db.session() as session:
        rows = {
            s.id: s
            for s in (
                await session.scalars(
                    select(Subscription).where(Subscription.id.in_([ended.id, granted.id, stripe_owned.id]))
                )
            ).all()
        }
        kinds = (
            await session.scalars(
                select(SubscriptionAdjustment.kind).where(SubscriptionAdjustment.subscription_id == ended.id)
            )
        ).all()
    assert rows[ended.id].ended_at == ended.current_period_end
    assert rows[granted.id].status == "active" and rows[stripe_owned.id].status == "active"
    assert list(kinds) == ["expire"]


async def test_purge_job_deletes_expired_billing_sessions(
    settings: Settings, services: Services, job_queue: None
) -> None:
    async with services.db.transaction() as session:
        app, _ = await factories.create_app(session)
        customer = await factories.create_customer(session)
        for hours in (-2, 2):
            session.add(
                BillingSession(
                    token_hash=bytes([hours % 256]) * 32,
                    app_id=app.id,
                    customer_id=customer.id,
                    expires_at=utcnow() + timedelta(hours=hours),
                )
            )

    async def purged() -> bool:
        async with services.db.session() as session:
            return (
                await session.scalar(
                    select(func.count()).select_from(BillingSession).where(BillingSession.customer_id == customer.id)
                )
                == 1
            )

    await _run_task(services, settings, "payment:purge_billing_sessions", purged)


async def test_purge_job_forgets_form_nonces_older_than_30_days(
    settings: Settings, services: Services, job_queue: None
) -> None:
    async with services.db.transaction() as session:
        for nonce, days in (("old-nonce", 31), ("fresh-nonce", 1)):
            session.add(
                FormSubmission(
                    nonce=nonce, action="refund", actor="admin:1", created_at=utcnow() - timedelta(days=days)
                )
            )

    async def purged() -> bool:
        async with services.db.session() as session:
            left = await session.scalars(
                select(FormSubmission.nonce).where(FormSubmission.nonce.in_(("old-nonce", "fresh-nonce")))
            )
            return set(left) == {"fresh-nonce"}

    await _run_task(services, settings, "payment:purge_form_submissions", purged)


class _Captured(sentry_sdk.transport.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


async def test_a_job_failing_for_good_reaches_sentry(
    settings: Settings, services: Services, world: World, job_queue: None
) -> None:
    transport = _Captured()
    sentry_sdk.init(dsn="https://key@o0.ingest.sentry.io/1", transport=transport, default_integrations=False)
    try:
        event = {
            "id": "evt_sentry_1",
            "type": "customer.subscription.updated",
            "created": 1700000000,
            "data": {"object": {"id": "sub_missing_for_sentry", "object": "subscription", "customer": "cus_nobody"}},
        }
        async with services.db.transaction() as session:
            row_id = (await store_event(session, event)).id
        job_id = await services.jobs.configure_task("payment:apply_stripe_event").defer_async(event_row_id=row_id)
        async with services.db.transaction() as session:  # it has already been retried 10 times: this is the last
            await session.execute(text("UPDATE procrastinate_jobs SET attempts = 10 WHERE id = :id"), {"id": job_id})

        async def failed() -> bool:
            async with services.db.session() as session:
                row = await session.get(StripeEvent, row_id, populate_existing=True)
                return row is not None and row.status == "failed"

        async with running_worker(settings, concurrency=1):
            await eventually(failed)
            await eventually(lambda: asyncio.sleep(0, result=bool(transport.events)), timeout=5)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)
    [report] = transport.events
    assert report["exception"]["values"][-1]["type"] == "StripeError"


async def test_sigterm_lets_the_running_job_finish(settings: Settings, world: World, job_queue: None) -> None:
    plan = await world.plan()
    customer = await world.customer()
    checkout = await world.subscribe(customer, plan)
    completed = next(e for e in await world.events() if e["type"] == "checkout.session.completed")
    # Stripe answers the job's first read slowly (3 s, then a 500 the SDK retries): the job is mid-flight
    await world.control(
        "POST",
        "faults",
        json={"method": "GET", "path_prefix": "/v1/subscriptions", "status": 500, "times": 1, "delay_seconds": 3},
    )
    async with world.services.db.session() as session:
        before = await session.scalar(text("SELECT coalesce(max(id), 0) FROM procrastinate_workers"))

    async def registered() -> int:  # Procrastinate workers this process started
        async with world.services.db.session() as session:
            found = await session.scalar(
                text("SELECT count(*) FROM procrastinate_workers WHERE id > :before"), {"before": before}
            )
        return int(found or 0)

    worker = WorkerProcess(settings, concurrency=None).start()  # its default: 4 fetch loops, one of them runs it
    try:

        async def waiting() -> bool:  # started: its 128 slots are fetched by 4 Procrastinate workers
            return await registered() >= 4

        await eventually(waiting, timeout=30, every=0.05)
        async with world.services.db.transaction() as session:
            row_id = (await store_event(session, completed)).id
        await world.services.jobs.configure_task("payment:apply_stripe_event").defer_async(event_row_id=row_id)

        async def running() -> bool:
            async with world.services.db.session() as session:
                return bool(
                    await session.scalar(
                        text(
                            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
                            "AND (args->>'event_row_id')::bigint = :id"
                        ),
                        {"id": row_id},
                    )
                )

        await eventually(running, timeout=20, every=0.05)
        assert await registered() == 4  # one per fetch loop, no more
        worker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        worker.stop()
    assert code in (0, 143), worker.output()
    row = await world.event_row(completed["id"])
    assert row is not None and row.status == "handled"
    sub = await world.subscription(checkout["subscription"])
    assert sub is not None and sub.status == "active"


async def test_the_daily_audit_check_reports_a_broken_chain_to_sentry(
    settings: Settings, services: Services, job_queue: None
) -> None:
    transport = _Captured()
    sentry_sdk.init(
        dsn="https://key@o0.ingest.sentry.io/1",
        transport=transport,
        default_integrations=False,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    async with services.db.transaction() as session:
        row = await audit.record(session, actor=audit.SYSTEM, action="test.daily_check")
    async with services.db.transaction() as session:  # someone with database access rewrites history
        await session.execute(text("UPDATE audit_log SET action = 'test.rewritten' WHERE id = :id"), {"id": row.id})

    async def recorded() -> bool:
        async with services.db.session() as session:
            return bool(await session.scalar(text("SELECT verified_ok IS FALSE FROM audit_chain_head")))

    try:
        await _run_task(services, settings, "payment:verify_audit_chain", recorded)
        await eventually(lambda: asyncio.sleep(0, result=bool(transport.events)), timeout=5)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)
        async with services.db.transaction() as session:
            await session.execute(
                text("UPDATE audit_log SET action = 'test.daily_check' WHERE id = :id"), {"id": row.id}
            )
    assert any(
        f"row {row.id}: its content was changed" in str(event.get("logentry") or event.get("message"))
        for event in transport.events
    ), transport.events
