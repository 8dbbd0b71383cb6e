"""Mail transport: SMTP_URL (smtp:// with STARTTLS when offered, smtps:// for TLS from the start, credentials in the
URL), through the standard library's smtplib in a worker thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from payment.dunning.render import Email
from payment.errors import ConfigError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def _send_blocking(server: SmtpServer, message: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if server.implicit_tls:
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=timeout)
    with client:
        client.ehlo()
        if not server.implicit_tls:
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif server.username and server.host not in LOOPBACK:
                raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS; credentials are not sent in clear")
        if server.username:
            client.login(server.username, server.password or "")
        client.send_message(message)


async def send(server: SmtpServer, message: EmailMessage, *, timeout: float = 20.0) -> Sent:
    """Hand one message to the server. A 5xx answer (unknown mailbox, rejected) is permanent; connection trouble
    and 4xx answers are worth retrying."""
    try:
        await asyncio.to_thread(_send_blocking, server, message, timeout)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        code = codes[0] if codes else None
        return Sent(
            ok=False,
            permanent=code is not None and code >= 500,
            code=code,
            error=f"The mail server refused the address ({code}).",
        )
    except smtplib.SMTPResponseException as exc:
        return Sent(
            ok=False,
            permanent=exc.smtp_code >= 500,
            code=exc.smtp_code,
            error=f"The mail server answered {exc.smtp_code}.",
        )
    except smtplib.SMTPNotSupportedError as exc:
        return Sent(ok=False, error=f"Mail server: {exc}")
    except (OSError, smtplib.SMTPException) as exc:
        return Sent(ok=False, error=f"Could not reach the mail server ({type(exc).__name__}).")
    return Sent(ok=True)
