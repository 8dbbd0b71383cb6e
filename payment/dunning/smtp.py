"""Mail transport: SMTP_URL (smtp:// with STARTTLS when offered, smtps:// for TLS from the start, credentials in the
URL), through the standard library's smtplib in a worker thread so the event loop never blocks.

One mail is sent in phases, so the caller can record durably that the hand-off begins: connect and greet, MAIL FROM
and RCPT TO (nothing delivered yet: safe to retry), then `before_data`, then DATA (from here the server may deliver).
"""

from __future__ import annotations

import asyncio
import io
import os
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from payment.dunning.render import Email
from payment.errors import ConfigError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HALT_ENV, HALT_FILE_ENV = "PAYMENT_TEST_SMTP_HALT", "PAYMENT_TEST_SMTP_HALT_FILE"
HALT_TO_ENV = "PAYMENT_TEST_SMTP_HALT_TO"
PHASES = ("before_data", "after_data")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never show the password in logs or tracebacks
        return f"SmtpServer({'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port})"


@dataclass(frozen=True)
class Sent:
    ok: bool
    permanent: bool = False
    code: int | None = None
    error: str | None = None
    in_doubt: bool = False


def parse_smtp_url(url: str) -> SmtpServer:
    """smtp://user:password@host:587 or smtps://host:465; a clear error for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError("SMTP_URL has an invalid port") from None
    return SmtpServer(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(email: Email, *, sender: str, message_id: str) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part preferred by mail readers."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, email.to, email.subject
    domain = sender.rsplit("@", 1)[-1].strip(">") or None
    message["Message-ID"] = make_msgid(idstring=message_id, domain=domain)
    message["Content-Language"] = email.language
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def _open_blocking(server: SmtpServer, timeout: float) -> smtplib.SMTP:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if server.implicit_tls:
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=timeout)
    try:
        client.ehlo()
        if not server.implicit_tls:
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif server.username and server.host not in LOOPBACK:
                raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS; credentials are not sent in clear")
        if server.username:
            client.login(server.username, server.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _envelope_blocking(client: smtplib.SMTP, message: EmailMessage) -> None:
    """MAIL FROM and RCPT TO: nothing is delivered yet, so a failure here (or a crash) is safe to retry."""
    sender = getaddresses([str(message["From"])])[0][1]
    recipients = [address for _, address in getaddresses([str(message["To"])]) if address]
    code, answer = client.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, answer, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for address in recipients:
        code, answer = client.rcpt(address)
        if code not in (250, 251):
            refused[address] = (code, answer)
    if len(refused) == len(recipients):
        raise smtplib.SMTPRecipientsRefused(refused)


def _data_blocking(client: smtplib.SMTP, message: EmailMessage) -> None:
    """DATA: from here the server may deliver the mail, whatever happens to us."""
    buffer = io.BytesIO()
    BytesGenerator(buffer).flatten(message, linesep="\r\n")
    code, answer = client.data(buffer.getvalue())
    if code != 250:
        raise smtplib.SMTPDataError(code, answer)


def _close_blocking(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _refused(exc: smtplib.SMTPRecipientsRefused) -> Sent:
    codes = [code for code, _ in exc.recipients.values()]
    code = codes[0] if codes else None
    return Sent(
        ok=False,
        permanent=code is not None and code >= 500,
        code=code,
        error=f"The mail server refused the address ({code}).",
    )


async def send(
    server: SmtpServer,
    message: EmailMessage,
    *,
    timeout: float = 20.0,
    before_data: Callable[[], Awaitable[bool]] | None = None,
    fault: FaultPoint | None = None,
) -> Sent:
    """Hand one message to the server. A 5xx answer (unknown mailbox, rejected) is permanent; connection trouble
    and 4xx answers are worth retrying. `before_data` is awaited (and must answer True) between RCPT TO and DATA,
    to record durably that the hand-off begins; a connection lost after that is `in_doubt`, never retried."""
    handed_off = False
    client: smtplib.SMTP | None = None
    try:
        client = await asyncio.to_thread(_open_blocking, server, timeout)
        await asyncio.to_thread(_envelope_blocking, client, message)
        if fault is not None:
            await asyncio.to_thread(fault, "before_data", str(message["To"]))
        if before_data is not None:
            try:
                proceed = await before_data()
            except Exception as exc:  # the hand-off could not be recorded: do not hand over, retry later
                return Sent(ok=False, error=f"Could not record the hand-off ({type(exc).__name__}); not sent yet.")
            if not proceed:
                return Sent(ok=False, error="This attempt was superseded by another worker; not handed over.")
        handed_off = True
        await asyncio.to_thread(_data_blocking, client, message)
        if fault is not None:
            await asyncio.to_thread(fault, "after_data", str(message["To"]))
    except smtplib.SMTPRecipientsRefused as exc:
        return _refused(exc)
    except smtplib.SMTPResponseException as exc:  # a definite answer, even to DATA: the mail was not taken
        return Sent(
            ok=False,
            permanent=exc.smtp_code >= 500,
            code=exc.smtp_code,
            error=f"The mail server answered {exc.smtp_code}.",
        )
    except smtplib.SMTPNotSupportedError as exc:
        return Sent(ok=False, error=f"Mail server: {exc}")
    except (OSError, smtplib.SMTPException) as exc:
        if handed_off:
            return Sent(
                ok=False,
                in_doubt=True,
                error=f"The connection was lost during the hand-off ({type(exc).__name__}); the mail may have arrived.",
            )
        return Sent(ok=False, error=f"Could not reach the mail server ({type(exc).__name__}).")
    finally:
        if client is not None:
            await asyncio.to_thread(_close_blocking, client)
    return Sent(ok=True)


class FaultPoint:
    """A test's fault point (like the Stripe sandbox's fault injection): at the phase named by
    PAYMENT_TEST_SMTP_HALT (`before_data` or `after_data`) of a mail to PAYMENT_TEST_SMTP_HALT_TO (any mail when
    unset), write the phase to PAYMENT_TEST_SMTP_HALT_FILE and stop there until the process is killed. Only built
    when APP_ENV is test."""

    def __init__(self, phase: str, marker: str, recipient: str | None = None) -> None:
        self.phase, self.marker, self.recipient = phase, marker, recipient

    @classmethod
    def from_environment(cls) -> FaultPoint | None:
        phase, marker = os.environ.get(HALT_ENV), os.environ.get(HALT_FILE_ENV)
        recipient = os.environ.get(HALT_TO_ENV) or None
        return cls(phase, marker, recipient) if phase in PHASES and marker else None

    def __call__(self, phase: str, recipient: str) -> None:
        if phase != self.phase or self.recipient not in (None, recipient):
            return
        Path(self.marker).write_text(phase)
        while True:  # the test SIGKILLs the process here
            time.sleep(1)
