"""Delivery behaviour a client app observes: retries in order while it fails, signatures across a secret
rotation, and nothing lost or duplicated when a worker is killed mid-delivery."""

from __future__ import annotations

import asyncio
import signal
import threading
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from payment.app_webhooks import delivery, endpoints
from payment.config import Settings
from payment.models import Customer, OutboxMessage, WebhookEndpoint, utcnow
from payment.outbox.delivery import deliver_due, retry_delay
from payment.runtime import Services
from tests.integration.app_webhooks.conftest import ClientApp, client_app, messages
from tests.integration.app_webhooks.receiver import Delivery, webhook_receiver
from tests.integration.jobs.conftest import WorkerProcess, eventually, running_worker
from tests.support import factories


async def _renamings(services: Services, customer: Customer, count: int) -> None:
    """`count` changes of one user, each in its own transaction (each a customer.updated event)."""
    for n in range(count):
        async with services.db.transaction() as session:
            row = await session.get_one(Customer, customer.id)
            row.name = f"Name {n}"


async def _customer(services: Services) -> Customer:
    async with services.db.transaction() as session:
        return await factories.create_customer(session)


def _names(accepted: list[Delivery], app: ClientApp) -> list[str]:
    return [d.verified(app.secret)["data"]["name"] for d in accepted]


async def test_a_failing_receiver_gets_everything_in_order_once_it_recovers(
    services: Services, settings: Settings
) -> None:
    with webhook_receiver() as receiver:
        failures = {"left": 4}
        answered_before: list[str] = []

        def answer(d: Delivery) -> int:
            answered_before.append(d.id)
            if failures["left"] > 0:
                failures["left"] -= 1
                return 503
            return 204

        receiver.answer = answer
        vega = await client_app(services, receiver.url, event_types=("customer.updated",))
        customer = await _customer(services)
        await _renamings(services, customer, 5)
        async with running_worker(settings.replace(outgoing_webhook_retry_base_ms=100)):
            accepted = await receiver.wait_accepted(5)

    assert _names(accepted, vega) == [f"Name {n}" for n in range(5)]
    # while the first one was refused, nothing after it was tried: every attempt carried the first id
    assert answered_before[:5] == [accepted[0].id] * 5
    rows = await messages(services, vega.endpoint.id)
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 5)] + [("delivered", 1)] * 4
    assert rows[0].last_status_code == 204


async def test_both_secrets_sign_during_a_rotation_overlap_and_only_the_new_one_after(services: Services) -> None:
    with webhook_receiver() as receiver:
        vega = await client_app(services, receiver.url)
        async with services.db.transaction() as session:
            rotated = await endpoints.rotate_secret(
                session,
                vega.endpoint.id,
                overlap=timedelta(hours=24),
                secret_key=services.settings.secret_key,
                actor="test",
            )
            await endpoints.send_test(session, vega.endpoint.id, actor="test")
        await delivery.deliver(services.db, services.settings)
        during = (await receiver.wait_accepted(1))[0]
        assert during.verified(vega.secret)["type"] == "webhook.test"
        assert during.verified(rotated.secret)["data"]["endpointId"] == vega.endpoint.id

        async with services.db.transaction() as session:
            final = await endpoints.rotate_secret(
                session, vega.endpoint.id, overlap=timedelta(0), secret_key=services.settings.secret_key, actor="test"
            )
            await endpoints.send_test(session, vega.endpoint.id, actor="test")
        await delivery.deliver(services.db, services.settings)
        after = (await receiver.wait_accepted(2))[1]
    assert after.verified(final.secret)["type"] == "webhook.test"
    for old in (vega.secret, rotated.secret):
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(after.body, after.headers)


@pytest.mark.slow
async def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_no_id(
    services: Services, settings: Settings
) -> None:
    with webhook_receiver() as receiver:
        receiver.hold = threading.Event()  # the first request hangs: the worker is killed while it waits
        vega = await client_app(services, receiver.url, event_types=("customer.updated",))
        customer = await _customer(services)
        await _renamings(services, customer, 3)
        first = WorkerProcess(settings)
        first.env["OUTGOING_WEBHOOK_TIMEOUT_SECONDS"] = "2"
        first.start()
        try:
            assert await asyncio.to_thread(receiver.held.wait, 60)
            first.signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 30)
        finally:
            if first.process is not None and first.process.poll() is None:
                first.process.kill()
        receiver.hold.set()

        async def left_sending() -> bool:
            rows = await messages(services, vega.endpoint.id)
            return rows[0].status == "sending" and rows[0].attempts == 1

        await eventually(left_sending, timeout=10)
        second = WorkerProcess(settings)
        second.env["OUTGOING_WEBHOOK_TIMEOUT_SECONDS"] = "2"
        second.start()
        try:
            accepted = await receiver.wait_accepted(3, timeout=90)
        finally:
            second.signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 40)

    assert _names(accepted, vega) == ["Name 0", "Name 1", "Name 2"]
    assert len({d.id for d in accepted}) == 3 == len(receiver.all())  # no id accepted twice
    rows: list[OutboxMessage] = await messages(services, vega.endpoint.id)
    assert [r.message_id for r in rows] == [d.id for d in accepted]  # the killed attempt's id, sent again
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 2), ("delivered", 1), ("delivered", 1)]


async def test_a_delivery_refused_for_three_days_is_failed_and_the_next_waits_for_the_endpoint(
    services: Services,
) -> None:
    with webhook_receiver() as receiver:
        receiver.answer = lambda d: 410 if b'"Name 0"' in d.body else 200
        vega = await client_app(services, receiver.url, event_types=("customer.updated",))
        customer = await _customer(services)
        await _renamings(services, customer, 2)
        channel = delivery.webhook_channel(services.db, services.settings)
        await deliver_due(services.db, channel)
        later = utcnow() + timedelta(days=3, minutes=1)
        await deliver_due(services.db, channel, clock=lambda: later)
        rows = await messages(services, vega.endpoint.id)
        # the first is given up (kept, replayable); the endpoint failed for three days, so it is disabled
        assert [(r.status, r.attempts, r.last_status_code) for r in rows] == [("failed", 2, 410), ("pending", 0, None)]
        assert rows[0].last_error == "HTTP 410: ok"
        async with services.db.transaction() as session:
            endpoint = await session.get_one(WebhookEndpoint, vega.endpoint.id)
            assert not endpoint.enabled and endpoint.disabled_reason is not None
            assert "HTTP 410" in endpoint.disabled_reason
            await endpoints.set_enabled(session, vega.endpoint.id, True, actor="test")
        await deliver_due(services.db, channel)
        accepted = await receiver.wait_accepted(1)
    assert _names(accepted, vega) == ["Name 1"]


def test_retries_back_off_exponentially_up_to_eight_hours() -> None:
    base = timedelta(seconds=5)
    assert [retry_delay(n, base).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(40, base) == timedelta(hours=8)
