"""Customers as client apps name them: one `externalUserId` across every app of the suite."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.errors import ValidationError
from payment.models import Customer

EXTERNAL_ID_MAX = 255
EMAIL_MAX = 320
NAME_MAX = 1024
LOCALE_MAX = 16
# The same patterns as the OpenAPI document. Python's \s is wider than PostgreSQL's, so an email that passes here
# also passes the table's CHECK.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NOT_BLANK_RE = re.compile(r"\S")
# \ufeff is whitespace to ECMAScript (the OpenAPI pattern) but not to Python: refused here so both agree
EMAIL_RE = re.compile(r"^[^@\s\ufeff]+@[^@\s\ufeff]+\.[^@\s\ufeff]+$")
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")


def _text(value: str, field: str, maximum: int) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} is not valid Unicode text.", field=field) from None
    if _CONTROL_RE.search(value):
        raise ValidationError(f"{field} must not contain control characters.", field=field)
    if len(value) > maximum:
        raise ValidationError(f"{field} must be at most {maximum} characters.", field=field)
    return value


def check_external_user_id(value: str) -> str:
    _text(value, "externalUserId", EXTERNAL_ID_MAX)
    if not _NOT_BLANK_RE.search(value):
        raise ValidationError("externalUserId must not be empty.", field="externalUserId")
    return value


@dataclass(frozen=True)
class CustomerInput:
    external_user_id: str
    email: str | None = None
    name: str | None = None
    locale: str | None = None

    def validated(self) -> CustomerInput:
        """The same input, checked (values are kept as sent), or a ValidationError naming the first bad field."""
        external = check_external_user_id(self.external_user_id)
        if self.email is not None:
            _text(self.email, "email", EMAIL_MAX)
            if not EMAIL_RE.match(self.email):
                raise ValidationError("email must be an email address like name@example.com.", field="email")
        if self.name is not None:
            _text(self.name, "name", NAME_MAX)
        if self.locale is not None and (len(self.locale) > LOCALE_MAX or not LOCALE_RE.match(self.locale)):
            raise ValidationError("locale must be a language tag such as en or th-TH.", field="locale")
        locale = self.locale.replace("_", "-") if self.locale else None
        return CustomerInput(external, self.email, self.name or None, locale)


async def get_by_external_id(session: AsyncSession, external_user_id: str) -> Customer | None:
    return (
        await session.execute(select(Customer).where(Customer.external_user_id == external_user_id))
    ).scalar_one_or_none()


async def upsert(session: AsyncSession, data: CustomerInput, *, actor: str) -> Customer:
    """The customer with this externalUserId, created if new; email, name and locale given replace the stored ones."""
    data = data.validated()
    query = select(Customer).where(Customer.external_user_id == data.external_user_id).with_for_update()
    customer = (await session.execute(query)).scalar_one_or_none()
    if customer is None:
        # ON CONFLICT DO NOTHING: two first sessions for the same user at once must not fail either request.
        inserted = (
            await session.execute(
                insert(Customer)
                .values(external_user_id=data.external_user_id, email=data.email, name=data.name, locale=data.locale)
                .on_conflict_do_nothing(index_elements=["external_user_id"])
                .returning(Customer.id)
            )
        ).scalar()
        customer = (await session.execute(query.execution_options(populate_existing=True))).scalar_one()
        if inserted is not None:
            await audit.record(
                session,
                actor=actor,
                action="customer.created",
                entity_type="customer",
                entity_id=customer.id,
                details={"external_user_id": data.external_user_id},
            )
            return customer
    changes: dict[str, object] = {}
    for name in ("email", "name", "locale"):
        new = getattr(data, name)
        if new is not None and getattr(customer, name) != new:
            changes[name] = new
            setattr(customer, name, new)
    if changes:
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="customer.updated",
            entity_type="customer",
            entity_id=customer.id,
            details=changes,
        )
    return customer
