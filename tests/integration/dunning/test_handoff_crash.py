"""Never twice across a crash: a real `payment worker` process is SIGKILLed at each phase of an SMTP send (halted
there by the sender's test fault point), and a real SMTP server on loopback counts what it accepted. Killed before
the DATA hand-off, the mail is sent when its lease runs out; killed after the server accepted it, the mail is
`in_doubt` and never sent again by itself."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from payment.config import Settings
from payment.dunning import channel, smtp
from payment.models import OutboxMessage, utcnow
from payment.outbox import delivery
from payment.runtime import Services
from tests.integration.dunning import world as dw
from tests.integration.dunning.mailbox import SmtpServer
from tests.integration.jobs.conftest import WorkerProcess, eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def halted_worker(settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, Path]]:
    worker = WorkerProcess(settings, concurrency=1)
    marker = tmp_path / "halted"
    assert settings.smtp_url is not None
    worker.env.update({"SMTP_URL": settings.smtp_url, smtp.HALT_FILE_ENV: str(marker)})
    yield worker, marker
    worker.stop()


async def _message(services: Services, message_id: int) -> OutboxMessage:
    async with services.db.session() as session:
        return await session.get_one(OutboxMessage, message_id)


async def _kill_at(worker: WorkerProcess, marker: Path, phase: str, address: str) -> None:
    """Start the worker, let it reach `phase` of the mail to `address` (the module's earlier tests may leave other
    mail due, which it sends on the way), and SIGKILL it there."""
    worker.env.update({smtp.HALT_ENV: phase, smtp.HALT_TO_ENV: address})
    worker.start()

    async def halted() -> bool:
        assert worker.process is not None and worker.process.poll() is None, worker.output()
        return await asyncio.to_thread(marker.exists)

    await eventually(halted, timeout=60)
    assert await asyncio.to_thread(marker.read_text) == phase
    worker.signal(signal.SIGKILL)
    worker.wait(10)


def _after_lease(services: Services) -> delivery.Channel:
    return channel.email_channel(services.db, services.settings)


async def test_a_worker_killed_before_the_data_hand_off_leaves_the_mail_to_be_sent_once(
    services: Services, smtp_server: SmtpServer, halted_worker: tuple[WorkerProcess, Path]
) -> None:
    worker, marker = halted_worker
    address = "before-data@example.com"
    _app, _key, _plan, customer, _sub, invoice = await dw.renewal(services, email=address)
    await dw.fail(services, invoice.id, 1)
    [notice] = await dw.emails(services, customer)

    await _kill_at(worker, marker, "before_data", address)
    assert smtp_server.mailbox.to(address) == []  # RCPT TO was accepted, DATA never began
    killed = await _message(services, notice.id)
    assert (killed.status, killed.handed_off_at) == ("sending", None)

    email_channel = _after_lease(services)
    later = utcnow() + email_channel.lease + timedelta(seconds=1)
    assert await delivery.deliver_due(services.db, email_channel, clock=lambda: later) >= 1  # others may fall due
    assert len(_copies(smtp_server, address, killed.message_id)) == 1
    sent = await _message(services, notice.id)
    assert (sent.status, sent.attempts) == ("delivered", 2)


def _copies(smtp_server: SmtpServer, address: str, message_id: str) -> list[object]:
    """The mails to `address` that carry this outbox message's Message-ID (make_msgid puts the id before the `@`)."""
    return [m for m in smtp_server.mailbox.to(address) if f".{message_id}@" in str(m["Message-ID"])]


async def test_a_worker_killed_after_the_server_accepted_the_mail_leaves_it_in_doubt_never_resent(
    services: Services, smtp_server: SmtpServer, halted_worker: tuple[WorkerProcess, Path]
) -> None:
    worker, marker = halted_worker
    address = "after-data@example.com"
    _app, _key, _plan, customer, _sub, invoice = await dw.renewal(services, email=address)
    await dw.fail(services, invoice.id, 1)
    [notice] = await dw.emails(services, customer)

    await _kill_at(worker, marker, "after_data", address)
    assert len(smtp_server.mailbox.to(address)) == 1  # the server took it; the worker died before recording so
    killed = await _message(services, notice.id)
    assert killed.status == "sending" and killed.handed_off_at is not None

    email_channel = _after_lease(services)
    later = utcnow() + email_channel.lease + timedelta(seconds=1)
    for _ in range(2):  # the lease has run out, and later runs still do not send it (other mail may go out)
        await delivery.deliver_due(services.db, email_channel, clock=lambda: later)
    doubt = await _message(services, notice.id)
    assert (doubt.status, doubt.attempts) == ("in_doubt", 1)
    assert doubt.last_error == delivery.IN_DOUBT_ERROR
    # other notices of this customer may fall due meanwhile; this one reached the server once and only once
    assert len(_copies(smtp_server, address, killed.message_id)) == 1
