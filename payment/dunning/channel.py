"""The email channel of the outbox: render a notice, add a fresh billing link, hand it to the SMTP server.

Never lost, never twice: a unique key per (notice, object) means no second notice is ever queued; a worker killed
before the DATA hand-off leaves the mail to be sent again when its lease runs out; one killed after the hand-off
began (committed just before DATA) leaves it `in_doubt`, not resent by itself, shown on the customer page and the
Outbox page with a "Send again" action for an admin who knows it did not arrive.
"""

from __future__ import annotations

from datetime import timedelta

from payment.audit import service as audit
from payment.billing_sessions import service as billing_sessions
from payment.config import Settings
from payment.db import Database
from payment.dunning import cases, notices, smtp
from payment.dunning.render import render
from payment.models import App, Customer
from payment.outbox.delivery import Channel, Claimed, Outcome, deliver_due, mark_handed_off

LINK_TTL = timedelta(days=3)  # long enough to act on the email for a few days; the next notice brings a new one


async def fresh_link(db: Database, settings: Settings, payload: dict[str, object]) -> str | None:
    """A new billing session for the customer in the notice's app (a short transaction, before any SMTP call)."""
    app_id, customer_id = payload.get("appId"), payload.get("customerId")
    if not isinstance(app_id, int) or not isinstance(customer_id, int):
        return None
    async with db.transaction() as session:
        app, customer = await session.get(App, app_id), await session.get(Customer, customer_id)
        if app is None or customer is None or not app.is_active:
            return None
        created = await billing_sessions.create(
            session,
            app=app,
            customer=customer,
            locale=customer.locale,
            ttl_seconds=int(LINK_TTL.total_seconds()),
            base_url=settings.base_url,
            actor=audit.SYSTEM,
        )
    return created.url


async def _nothing_paused(session: object) -> set[str]:
    return set()


async def _no_health(session: object, target: str, outcome: Outcome, now: object) -> None:
    return None  # a mailbox's failures are shown on its message rows (the customer page lists them)


def email_channel(db: Database, settings: Settings) -> Channel:
    """Notices as this deployment sends them, to the server of SMTP_URL."""
    if settings.smtp_url is None:
        raise ValueError("SMTP_URL is not set")
    server = smtp.parse_smtp_url(settings.smtp_url)
    fault = smtp.FaultPoint.from_environment() if settings.app_env == "test" else None

    async def send(message: Claimed) -> Outcome:
        payload = message.payload
        link = await fresh_link(db, settings, payload) if payload["notice"] in notices.WITH_BILLING_LINK else None
        email = render(payload, link=link)

        async def before_data() -> bool:
            return await mark_handed_off(db, message)

        sent = await smtp.send(
            server,
            smtp.build_message(email, sender=settings.mail_from, message_id=message.message_id),
            before_data=before_data,
            fault=fault,
        )
        return Outcome(
            ok=sent.ok, permanent=sent.permanent, in_doubt=sent.in_doubt, status_code=sent.code, error=sent.error
        )

    return Channel(
        kind=notices.KIND,
        send=send,
        paused_targets=_nothing_paused,
        on_outcome=_no_health,
        retry_base=timedelta(milliseconds=settings.email_retry_base_ms),
        lease=timedelta(seconds=60),
    )


async def deliver(db: Database, settings: Settings) -> int:
    """The job body: send every notice that is due (none while SMTP_URL is unset: they wait, visible in the admin)."""
    if settings.smtp_url is None:
        return 0
    return await deliver_due(db, email_channel(db, settings))


async def queue_time_notices(db: Database) -> int:
    """The job body: grace-ending and access-blocked notices that have come due."""
    async with db.transaction() as session:
        return await cases.send_due_notices(session)
