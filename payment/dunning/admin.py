"""What admins see and do about dunning: a customer's cases and notices, resending a notice, the outbox."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.dunning import notices
from payment.errors import Conflict, NotFound
from payment.models import DunningCase, Invoice, OutboxMessage
from payment.outbox import service as outbox

RECENT = 50


@dataclass(frozen=True)
class CaseRow:
    case: DunningCase
    invoice: Invoice


@dataclass(frozen=True)
class CustomerDunning:
    cases: list[CaseRow]
    notices: list[OutboxMessage]

    @property
    def open_cases(self) -> list[CaseRow]:
        return [row for row in self.cases if row.case.is_open]

    @property
    def failed_notices(self) -> list[OutboxMessage]:
        return [m for m in self.notices if m.status == "failed"]

    @property
    def in_doubt_notices(self) -> list[OutboxMessage]:
        """Handed to the mail server when the worker died, before the answer was recorded: may have arrived."""
        return [m for m in self.notices if m.status == "in_doubt"]


async def customer_dunning(session: AsyncSession, customer_id: int) -> CustomerDunning:
    """The customer's dunning cases (newest first) and the notices queued for them (newest first)."""
    cases = (
        await session.execute(
            select(DunningCase, Invoice)
            .join(Invoice, Invoice.id == DunningCase.invoice_id)
            .where(DunningCase.customer_id == customer_id)
            .order_by(DunningCase.id.desc())
            .limit(RECENT)
        )
    ).all()
    sent = (
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == notices.KIND, OutboxMessage.target == notices.target_of(customer_id))
            .order_by(OutboxMessage.id.desc())
            .limit(RECENT)
        )
    ).all()
    return CustomerDunning(cases=[CaseRow(case, invoice) for case, invoice in cases], notices=list(sent))


async def resend_notice(session: AsyncSession, customer_id: int, message_id: int, *, actor: str) -> OutboxMessage:
    """Send one of the customer's notices again (same message, same Message-ID; after a bounce was fixed, a notice
    in doubt the user did not get, or at the user's request); audited. A notice being sent right now cannot be
    resent."""
    require(actor, Permission.MANAGE_SUBSCRIPTIONS)
    message = await session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None or message.kind != notices.KIND or message.target != notices.target_of(customer_id):
        raise NotFound("This customer has no such notice.")
    if message.status == "sending":
        raise Conflict("This notice is being sent right now; try again in a minute.")
    previous = message.status
    await outbox.requeue(session, kind=notices.KIND, target=notices.target_of(customer_id), message_ids=[message.id])
    await audit.record(
        session,
        actor=actor,
        action="dunning.notice_resent",
        entity_type="customer",
        entity_id=customer_id,
        details={"message_id": message.id, "notice": message.event_type, "previous_status": previous},
    )
    return message


async def recent_emails(session: AsyncSession, *, limit: int = RECENT) -> list[OutboxMessage]:
    """The newest notices of every customer, for the admin's Outbox page."""
    return list(
        (
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == notices.KIND)
                .order_by(OutboxMessage.id.desc())
                .limit(limit)
            )
        ).all()
    )


async def email(session: AsyncSession, message_id: int) -> OutboxMessage:
    message = await session.get(OutboxMessage, message_id)
    if message is None or message.kind != notices.KIND:
        raise NotFound("No such email.")
    return message


async def waiting_emails(session: AsyncSession) -> int:
    """How many notices wait to be sent (shown beside the warning when SMTP_URL is not set)."""
    count = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.kind == notices.KIND, OutboxMessage.status == "pending")
    )
    return int(count or 0)
