"""What each export holds: its columns, its query (the admin list's filters) and how a row becomes cells.

Queries select plain columns (no ORM objects) and are read newest first in keyset batches of the id, like the lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from payment.customers.records import audit_filters, invoice_filters, refund_filters, subscription_filters
from payment.customers.service import search_conditions
from payment.exports.csv_format import Cell, minor_text
from payment.models import AuditLog, BuyerDetails, Customer, Document, Invoice, Plan, Refund, Subscription

Filters = Mapping[str, str]


@dataclass(frozen=True)
class Table:
    """An export: its query selects the columns in the header's order; `money` and `json` name the positions
    written as amounts (minor units) and as JSON text."""

    kind: str
    header: Sequence[str]
    key: InstrumentedAttribute[int]
    query: Callable[[Filters], Select[*tuple[Any, ...]]]
    money: tuple[int, ...] = ()
    json: tuple[int, ...] = ()

    def cells(self, row: Sequence[Any]) -> list[Cell]:
        out = list(row)
        for i in self.money:
            out[i] = minor_text(out[i])
        for i in self.json:
            out[i] = json.dumps(out[i], ensure_ascii=False, sort_keys=True)
        return out


def _current(document: Any) -> ColumnElement[bool]:
    """A document no other document replaces (the one that counts now)."""
    newer = aliased(Document)
    return ~exists().where(newer.replaces_id == document.id)


def _subscriptions(filters: Filters) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Subscription.id,
            Subscription.created_at,
            Subscription.status,
            Subscription.source,
            Plan.slug,
            Plan.name,
            Customer.external_user_id,
            Customer.email,
            Subscription.current_period_start,
            Subscription.current_period_end,
            Subscription.cancel_at_period_end,
            Subscription.canceled_at,
            Subscription.ended_at,
            Subscription.stripe_subscription_id,
        )
        .join(Plan, Plan.id == Subscription.plan_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(*subscription_filters(filters))
    )


def _invoices(filters: Filters) -> Select[*tuple[Any, ...]]:
    tax = aliased(Document)
    notes = aliased(Document)
    credit_notes = (
        select(func.string_agg(notes.number, " ").label("numbers"))
        .where(notes.invoice_id == Invoice.id, notes.kind == "credit_note", _current(notes))
        .scalar_subquery()
    )
    return (
        select(
            Invoice.id,
            Invoice.created_at,
            Invoice.paid_at,
            Invoice.status,
            Invoice.source,
            Customer.external_user_id,
            Customer.email,
            Customer.name,
            BuyerDetails.company_name,
            BuyerDetails.tax_id,
            Invoice.currency,
            Invoice.amount_cents,
            Invoice.amount_refunded_cents,
            tax.number,
            tax.issue_date,
            tax.net_cents,
            tax.vat_cents,
            tax.vat_rate_bp,
            credit_notes.label("credit_notes"),
            Invoice.payment_method,
            Invoice.reference_number,
            Invoice.stripe_invoice_id,
        )
        .join(Customer, Customer.id == Invoice.customer_id)
        .outerjoin(BuyerDetails, BuyerDetails.customer_id == Invoice.customer_id)
        .outerjoin(tax, and_(tax.invoice_id == Invoice.id, tax.kind == "tax_invoice", _current(tax)))
        .where(*invoice_filters(filters))
    )


def _refunds(filters: Filters) -> Select[*tuple[Any, ...]]:
    note = aliased(Document)
    return (
        select(
            Refund.id,
            Refund.created_at,
            Refund.succeeded_at,
            Refund.status,
            Refund.invoice_id,
            Customer.external_user_id,
            Customer.email,
            Refund.currency,
            Refund.amount_cents,
            note.number,
            note.net_cents,
            note.vat_cents,
            Refund.reason,
            Refund.created_by,
            Refund.stripe_refund_id,
        )
        .join(Invoice, Invoice.id == Refund.invoice_id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .outerjoin(note, and_(note.refund_id == Refund.id, _current(note)))
        .where(*refund_filters(filters))
    )


def _customers(filters: Filters) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Customer.id,
            Customer.created_at,
            Customer.external_user_id,
            Customer.email,
            Customer.name,
            Customer.locale,
            Customer.stripe_customer_id,
            BuyerDetails.company_name,
            BuyerDetails.address,
            BuyerDetails.tax_id,
            BuyerDetails.branch_code,
        )
        .outerjoin(BuyerDetails, BuyerDetails.customer_id == Customer.id)
        .where(*search_conditions(filters.get("q")))
    )


def _audit(filters: Filters) -> Select[*tuple[Any, ...]]:
    return select(
        AuditLog.id,
        AuditLog.at,
        AuditLog.actor,
        AuditLog.action,
        AuditLog.entity_type,
        AuditLog.entity_id,
        AuditLog.details,
        AuditLog.ip,
    ).where(*audit_filters(filters))


TABLES: dict[str, Table] = {
    t.kind: t
    for t in (
        Table(
            "subscriptions",
            (
                "id",
                "created_at",
                "status",
                "source",
                "plan_slug",
                "plan_name",
                "external_user_id",
                "email",
                "current_period_start",
                "current_period_end",
                "cancel_at_period_end",
                "canceled_at",
                "ended_at",
                "stripe_subscription_id",
            ),
            Subscription.id,
            _subscriptions,
        ),
        Table(
            "invoices",
            (
                "id",
                "created_at",
                "paid_at",
                "status",
                "source",
                "external_user_id",
                "email",
                "customer_name",
                "buyer_company",
                "buyer_tax_id",
                "currency",
                "amount",
                "refunded",
                "tax_invoice_number",
                "tax_invoice_date",
                "amount_before_vat",
                "vat",
                "vat_rate_percent",
                "credit_note_numbers",
                "payment_method",
                "reference_number",
                "stripe_invoice_id",
            ),
            Invoice.id,
            _invoices,
            money=(11, 12, 15, 16, 17),
        ),
        Table(
            "refunds",
            (
                "id",
                "created_at",
                "succeeded_at",
                "status",
                "invoice_id",
                "external_user_id",
                "email",
                "currency",
                "amount",
                "credit_note_number",
                "amount_before_vat",
                "vat",
                "reason",
                "created_by",
                "stripe_refund_id",
            ),
            Refund.id,
            _refunds,
            money=(8, 10, 11),
        ),
        Table(
            "customers",
            (
                "id",
                "created_at",
                "external_user_id",
                "email",
                "name",
                "locale",
                "stripe_customer_id",
                "buyer_company",
                "buyer_address",
                "buyer_tax_id",
                "buyer_branch_code",
            ),
            Customer.id,
            _customers,
        ),
        Table(
            "audit",
            ("id", "at", "actor", "action", "entity_type", "entity_id", "details", "ip"),
            AuditLog.id,
            _audit,
            json=(6,),
        ),
    )
}
