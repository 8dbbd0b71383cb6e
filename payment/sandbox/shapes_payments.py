"""Builders for payment intent, charge, refund, invoice payment and test clock objects in the current API shapes.

`charge.refunds` and `invoice.payments` are includable: they are not stored on the object but built by `listing`
when `expand[]` asks for them, as Stripe does since 2022-11-15 and 2025-03-31.basil.
"""

from __future__ import annotations

from .store import JSON, new_id


def payment_intent(
    now: int, amount: int, currency: str, customer_id: str, pm_id: str | None, description: str | None
) -> JSON:
    pid = new_id("pi")
    return {
        "id": pid,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pid}_secret_{new_id('x', 24)[2:]}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pm_id,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": "off_session",
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(now: int, pi: JSON, pm: JSON, email: str | None) -> JSON:
    cid = new_id("ch")
    card = pm["card"]
    return {
        "id": cid,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"],
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn"),
        "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "AQUORIS",
        "captured": True,
        "created": now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": pi["amount"],
                "authorization_code": None,
                "brand": card["brand"],
                "checks": card["checks"],
                "country": "US",
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"],
                "funding": "credit",
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "transaction_link_id": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(now: int, ch: JSON, amount: int, reason: str | None, metadata: JSON) -> JSON:
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "customer": ch["customer"],
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": ch["payment_intent"],
        "payment_method": ch["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def invoice_payment(now: int, inv: JSON, pi: JSON) -> JSON:
    """The default payment of an invoice, open until its payment intent succeeds."""
    return {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": pi["amount"],
        "created": now,
        "currency": pi["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi["id"], "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def test_clock(now: int, frozen_time: int, name: str | None) -> JSON:
    return {
        "id": new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + 30 * 86400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }
