"""Mail transport against a real SMTP server: refused addresses fail at once, passing trouble is retried."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from payment.config import load_settings
from payment.dunning import channel, devmail, notices, smtp
from payment.errors import ConfigError
from payment.models import Customer, OutboxMessage, utcnow
from payment.outbox import delivery
from payment.runtime import Services
from tests.integration.dunning.mailbox import SmtpServer
from tests.support import factories


async def _queue_receipt(services: Services, email: str) -> Customer:
    async with services.db.transaction() as session:
        customer = await factories.create_customer(session, email=email)
        await notices.queue(
            session,
            customer,
            notices.RECEIPT,
            key="invoice:0",
            data={"amountCents": 1000, "currency": "usd", "paidAt": None},
        )
    return customer


async def _message(services: Services, customer: Customer) -> OutboxMessage:
    async with services.db.session() as session:
        return (
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.kind == "email", OutboxMessage.target == f"customer:{customer.id}"
                )
            )
        ).one()


async def test_an_address_the_server_refuses_fails_at_once_and_says_why(
    services: Services, smtp_server: SmtpServer
) -> None:
    smtp_server.mailbox.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    customer = await _queue_receipt(services, "nobody@example.com")
    assert await channel.deliver(services.db, services.settings) == 1
    row = await _message(services, customer)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, 550)
    assert row.last_error == "The mail server refused the address (550)."
    assert await channel.deliver(services.db, services.settings) == 0


async def test_a_temporary_refusal_is_retried_until_it_goes_through(
    services: Services, smtp_server: SmtpServer
) -> None:
    smtp_server.mailbox.refuse["busy@example.com"] = "451 4.3.0 Try again later"
    customer = await _queue_receipt(services, "busy@example.com")
    await channel.deliver(services.db, services.settings)
    row = await _message(services, customer)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 451)
    del smtp_server.mailbox.refuse["busy@example.com"]
    deadline = time.monotonic() + 10  # the retry is due after the 50 ms back-off of this module's settings
    while (await _message(services, customer)).status == "pending" and time.monotonic() < deadline:
        await channel.deliver(services.db, services.settings)
    assert (await _message(services, customer)).status == "delivered"
    assert len(smtp_server.mailbox.to("busy@example.com")) == 1


async def test_an_unreachable_server_is_a_retry_not_a_failure(services: Services) -> None:
    customer = await _queue_receipt(services, "later@example.com")
    down = services.settings.replace(smtp_url="smtp://127.0.0.1:9")
    await channel.deliver(services.db, down)
    row = await _message(services, customer)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "Could not reach the mail server (ConnectionRefusedError)."


def test_smtp_urls_are_read_with_credentials_and_bad_ones_refused() -> None:
    server = smtp.parse_smtp_url("smtps://mailer%40example.com:p%3Ass@mail.example.com")
    assert (server.host, server.port, server.implicit_tls, server.username, server.password) == (
        "mail.example.com",
        465,
        True,
        "mailer@example.com",
        "p:ss",
    )
    assert "p:ss" not in repr(server)
    assert smtp.parse_smtp_url("smtp://mail.example.com:587").implicit_tls is False
    for bad in ("http://mail.example.com", "smtp://", "smtp://host:notaport"):
        with pytest.raises(ConfigError):
            smtp.parse_smtp_url(bad)


async def test_the_dev_catcher_takes_every_mail_even_when_its_usual_port_is_taken(services: Services) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        controller, catcher = devmail.start_catcher(busy)
    try:
        assert controller.port != busy
        customer = await _queue_receipt(services, "dev@example.com")
        dev = services.settings.replace(smtp_url=f"smtp://127.0.0.1:{controller.port}")
        await channel.deliver(services.db, dev)  # (with what earlier tests left waiting for their retry)
        assert ("dev@example.com", "Receipt for your payment of $10.00") in catcher.caught
        assert (await _message(services, customer)).status == "delivered"
    finally:
        controller.stop()


def test_smtp_settings_are_read_and_a_wrong_scheme_is_refused_at_start() -> None:
    settings = load_settings({"SMTP_URL": "smtps://mailer:secret@mail.example.com", "MAIL_FROM": "Billing <b@x.io>"})
    assert (settings.smtp_url, settings.mail_from) == ("smtps://mailer:secret@mail.example.com", "Billing <b@x.io>")
    with pytest.raises(ConfigError, match="SMTP_URL must start with smtp://"):
        load_settings({"SMTP_URL": "mailto:ops@example.com"})


class _DropsAfterData:
    """An SMTP server on loopback that reads the whole message after DATA, then drops the connection without an
    answer: the mail may or may not have been delivered, as when a network breaks at the worst moment."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.received = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as stream:
                stream.write(b"220 drops.example ESMTP\r\n")
                stream.flush()
                while line := stream.readline():
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        stream.write(b"354 go ahead\r\n")
                        stream.flush()
                        while stream.readline() not in (b".\r\n", b""):
                            pass
                        self.received += 1
                        break  # no "250": the connection just ends
                    stream.write(b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
                    stream.flush()

    def close(self) -> None:
        self.listener.close()


async def test_a_connection_lost_after_the_message_was_sent_is_in_doubt_not_retried(services: Services) -> None:
    customer = await _queue_receipt(services, "maybe@example.com")
    server = _DropsAfterData()
    try:
        dropping = services.settings.replace(smtp_url=f"smtp://127.0.0.1:{server.port}")
        await channel.deliver(services.db, dropping)
        row = await _message(services, customer)
        assert (row.status, row.attempts, server.received) == ("in_doubt", 1, 1)
        assert row.last_error is not None and "the mail may have arrived" in row.last_error
        await channel.deliver(services.db, dropping)  # nothing is due: it is not sent again by itself
        assert (await _message(services, customer)).attempts == 1
    finally:
        server.close()


async def test_an_attempt_whose_lease_ran_out_and_was_claimed_again_does_not_hand_the_mail_over(
    services: Services, smtp_server: SmtpServer
) -> None:
    address = "late-worker@example.com"
    customer = await _queue_receipt(services, address)
    email_channel = channel.email_channel(services.db, services.settings)

    async def claim(now: datetime) -> delivery.Claimed:
        async with services.db.transaction() as session:
            claimed = await delivery.claim(session, email_channel, now=now)
        [mine] = [m for m in claimed if m.payload["to"] == address]
        return mine

    first = await claim(utcnow())
    second = await claim(utcnow() + email_channel.lease + timedelta(seconds=1))  # the first worker seemed dead
    late = await email_channel.send(first)  # ... but only slept: it must not send the mail the second one sends
    assert not late.ok and late.error is not None and "superseded" in late.error
    assert smtp_server.mailbox.to(address) == []
    assert (await email_channel.send(second)).ok
    assert len(smtp_server.mailbox.to(address)) == 1
    assert (await _message(services, customer)).handed_off_at is not None
