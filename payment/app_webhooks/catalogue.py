"""The events client apps can subscribe to, the body of each, and its JSON schema (OpenAPI `webhooks`).

Every body is `{"type", "timestamp", "subscriptionId", "sequence", "data"}`. `sequence` counts the events about
one subscription (1, 2, 3 ...; null for events about no subscription): an app that applied number n can ignore
anything lower. Numbers may skip (an event of a type the endpoint does not want, or for another app).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payment.billing.entitlements import iso
from payment.models import Customer, Invoice, Plan, Refund, Subscription

ENTITLEMENT_CHANGED = "entitlement.changed"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_UPDATED = "subscription.updated"
SUBSCRIPTION_CANCELED = "subscription.canceled"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
REFUND_SUCCEEDED = "refund.succeeded"
CUSTOMER_UPDATED = "customer.updated"
TEST = "webhook.test"

EVENT_TYPES: tuple[str, ...] = (
    ENTITLEMENT_CHANGED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_CANCELED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    REFUND_SUCCEEDED,
    CUSTOMER_UPDATED,
)

DESCRIPTIONS: dict[str, str] = {
    ENTITLEMENT_CHANGED: "What the user may use in your app changed (plan, status, period end or cancellation); "
    "`data` is exactly the body of GET /customers/{externalUserId}/subscription.",
    SUBSCRIPTION_CREATED: "A subscription was created (checkout, manual payment or grant).",
    SUBSCRIPTION_UPDATED: "A subscription's plan, status, period or cancellation changed (renewals included).",
    SUBSCRIPTION_CANCELED: "A subscription ended (canceled or expired); it no longer unlocks its plan.",
    INVOICE_PAID: "An invoice was paid (first payment, renewal, or a retry that succeeded).",
    INVOICE_PAYMENT_FAILED: "A payment attempt of an invoice failed; Stripe retries it.",
    REFUND_SUCCEEDED: "A refund of an invoice went through.",
    CUSTOMER_UPDATED: "The user's email, name or language changed.",
    TEST: "Sent by the admin's \"Send test event\" button; not part of any subscription's life.",
}


def envelope(
    event_type: str,
    at: datetime,
    data: dict[str, Any],
    *,
    subscription_id: int | None = None,
    sequence: int | None = None,
) -> dict[str, Any]:
    return {
        "type": event_type,
        "timestamp": iso(at),
        "subscriptionId": subscription_id,
        "sequence": sequence,
        "data": data,
    }


def subscription_data(sub: Subscription, plan: Plan, customer: Customer) -> dict[str, Any]:
    return {
        "id": sub.id,
        "externalUserId": customer.external_user_id,
        "plan": {"slug": plan.slug, "name": plan.name},
        "status": sub.status,
        "source": sub.source,
        "currentPeriodStart": iso(sub.current_period_start),
        "currentPeriodEnd": iso(sub.current_period_end),
        "cancelAtPeriodEnd": sub.cancel_at_period_end,
        "canceledAt": iso(sub.canceled_at),
        "endedAt": iso(sub.ended_at),
        "trialEnd": iso(sub.trial_end),
    }


def invoice_data(invoice: Invoice, customer: Customer) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "externalUserId": customer.external_user_id,
        "subscriptionId": invoice.subscription_id,
        "source": invoice.source,
        "status": invoice.status,
        "amount": invoice.amount_cents,
        "currency": invoice.currency,
        "amountRefunded": invoice.amount_refunded_cents,
        "attemptCount": invoice.attempt_count,
        "paidAt": iso(invoice.paid_at),
        "periodStart": iso(invoice.period_start),
        "periodEnd": iso(invoice.period_end),
    }


def refund_data(refund: Refund, invoice: Invoice, customer: Customer) -> dict[str, Any]:
    return {
        "id": refund.id,
        "invoiceId": invoice.id,
        "externalUserId": customer.external_user_id,
        "subscriptionId": invoice.subscription_id,
        "amount": refund.amount_cents,
        "currency": refund.currency,
        "reason": refund.reason,
        "succeededAt": iso(refund.succeeded_at),
    }


def customer_data(customer: Customer) -> dict[str, Any]:
    return {
        "externalUserId": customer.external_user_id,
        "email": customer.email,
        "name": customer.name,
        "locale": customer.locale,
    }


# ---- JSON schemas (OpenAPI 3.1 = JSON Schema 2020-12) ----

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_MONEY = {"type": "integer", "minimum": 0, "description": "Integer minor units of `currency` (satang, cents)."}
_CURRENCY = {"type": "string", "enum": ["thb", "usd"]}
_PLAN = {
    "type": "object",
    "required": ["slug", "name"],
    "additionalProperties": False,
    "properties": {"slug": {"type": "string"}, "name": {"type": "string"}},
}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(properties), "additionalProperties": False, "properties": properties}


DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "WebhookSubscription": _object(
        {
            "id": {"type": "integer"},
            "externalUserId": {"type": "string"},
            "plan": _PLAN,
            "status": {
                "type": "string",
                "enum": [
                    "incomplete",
                    "incomplete_expired",
                    "trialing",
                    "active",
                    "past_due",
                    "canceled",
                    "unpaid",
                    "paused",
                    "expired",
                ],
            },
            "source": {"type": "string", "enum": ["stripe", "manual", "grant"]},
            "currentPeriodStart": _TIME_OR_NULL,
            "currentPeriodEnd": _TIME_OR_NULL,
            "cancelAtPeriodEnd": {"type": "boolean"},
            "canceledAt": _TIME_OR_NULL,
            "endedAt": _TIME_OR_NULL,
            "trialEnd": _TIME_OR_NULL,
        }
    ),
    "WebhookInvoice": _object(
        {
            "id": {"type": "integer"},
            "externalUserId": {"type": "string"},
            "subscriptionId": {"type": ["integer", "null"]},
            "source": {"type": "string", "enum": ["stripe", "manual"]},
            "status": {
                "type": "string",
                "enum": [
                    "draft",
                    "open",
                    "paid",
                    "payment_failed",
                    "partially_refunded",
                    "refunded",
                    "void",
                    "uncollectible",
                ],
            },
            "amount": _MONEY,
            "currency": _CURRENCY,
            "amountRefunded": _MONEY,
            "attemptCount": {"type": "integer"},
            "paidAt": _TIME_OR_NULL,
            "periodStart": _TIME_OR_NULL,
            "periodEnd": _TIME_OR_NULL,
        }
    ),
    "WebhookRefund": _object(
        {
            "id": {"type": "integer"},
            "invoiceId": {"type": "integer"},
            "externalUserId": {"type": "string"},
            "subscriptionId": {"type": ["integer", "null"]},
            "amount": _MONEY,
            "currency": _CURRENCY,
            "reason": {"type": "string"},
            "succeededAt": _TIME_OR_NULL,
        }
    ),
    "WebhookCustomer": _object(
        {
            "externalUserId": {"type": "string"},
            "email": {"type": ["string", "null"]},
            "name": {"type": ["string", "null"]},
            "locale": {"type": ["string", "null"]},
        }
    ),
    "WebhookTest": _object({"message": {"type": "string"}, "endpointId": {"type": "integer"}}),
}

DATA_SCHEMA_OF: dict[str, str] = {
    ENTITLEMENT_CHANGED: "Entitlement",
    SUBSCRIPTION_CREATED: "WebhookSubscription",
    SUBSCRIPTION_UPDATED: "WebhookSubscription",
    SUBSCRIPTION_CANCELED: "WebhookSubscription",
    INVOICE_PAID: "WebhookInvoice",
    INVOICE_PAYMENT_FAILED: "WebhookInvoice",
    REFUND_SUCCEEDED: "WebhookRefund",
    CUSTOMER_UPDATED: "WebhookCustomer",
    TEST: "WebhookTest",
}


def event_schema(event_type: str) -> dict[str, Any]:
    """The whole body of one event type, with `data` referring to a component schema."""
    return _object(
        {
            "type": {"const": event_type},
            "timestamp": _TIME,
            "subscriptionId": {"type": ["integer", "null"], "description": "The subscription this event is about."},
            "sequence": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Increases with every event about `subscriptionId`; ignore a lower one.",
            },
            "data": {"$ref": f"#/components/schemas/{DATA_SCHEMA_OF[event_type]}"},
        }
    )
