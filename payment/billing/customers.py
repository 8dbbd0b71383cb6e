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
# The one rule set for a customer's fields. The client API's request model (payment/api/models.py) checks these
# very patterns and publishes them in the OpenAPI document, so a client validating with the document and the server
# agree. They spell whitespace and control characters out instead of using \s (whose meaning differs between
# Python, ECMAScript and Rust) and are matched whole (`fullmatch`: Python's $ would let a final newline through).
CONTROL = r"\u0000-\u001f\u007f"
SPACE = r"\t\n\u000b\u000c\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
TEXT_PATTERN = rf"^[^{CONTROL}]*$"
NOT_BLANK_PATTERN = rf"^[^{CONTROL}]*[^{SPACE}{CONTROL}][^{CONTROL}]*$"
EMAIL_PATTERN = rf"^[^@{SPACE}{CONTROL}]+@[^@{SPACE}{CONTROL}]+\.[^@{SPACE}{CONTROL}]+$"
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$"
_TEXT_RE = re.compile(TEXT_PATTERN)
_NOT_BLANK_RE = re.compile(NOT_BLANK_PATTERN)
EMAIL_RE = re.compile(EMAIL_PATTERN)
LOCALE_RE = re.compile(LOCALE_PATTERN)
EXTERNAL_ID_RULE = "externalUserId must not be empty or blank, nor contain control characters."
EMAIL_RULE = "email must be an email address like name@example.com."
TEXT_RULE = "{field} must not contain control characters."
LOCALE_RULE = "locale must be a language tag such as en or th-TH."


def _text(value: str, field: str, maximum: int) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} is not valid Unicode text.", field=field) from None
    if not _TEXT_RE.fullmatch(value):
        raise ValidationError(TEXT_RULE.format(field=field), field=field)
    if len(value) > maximum:
        raise ValidationError(f"{field} must be at most {maximum} characters.", field=field)
    return value


def check_external_user_id(value: str) -> str:
    _text(value, "externalUserId", EXTERNAL_ID_MAX)
    if not _NOT_BLANK_RE.fullmatch(value):
        raise ValidationError(EXTERNAL_ID_RULE, field="externalUserId")
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
            if not EMAIL_RE.fullmatch(self.email):
                raise ValidationError(EMAIL_RULE, field="email")
        if self.name is not None:
            _text(self.name, "name", NAME_MAX)
        if self.locale is not None and (len(self.locale) > LOCALE_MAX or not LOCALE_RE.fullmatch(self.locale)):
            raise ValidationError(LOCALE_RULE, field="locale")
        return CustomerInput(external, self.email, self.name, self.locale).normalized()

    def normalized(self) -> CustomerInput:
        """The stored form of input already checked (by `validated` or the client API's model, which checks the
        same patterns): a `th_TH` locale becomes `th-TH`, an empty name none."""
        locale = self.locale.replace("_", "-") if self.locale else None
        return CustomerInput(self.external_user_id, self.email, self.name or None, locale)


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
