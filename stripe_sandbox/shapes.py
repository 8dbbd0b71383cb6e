"""Builders for catalog, customer, checkout, portal and webhook objects in the current API shapes."""

from __future__ import annotations

from typing import Any

from .store import JSON, new_id


def null_address() -> JSON:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def product(now: int, name: str, **fields: Any) -> JSON:
    obj: JSON = {
        "id": new_id("prod", 14),
        "object": "product",
        "active": True,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }
    obj.update(fields)
    return obj


def price(now: int, product_id: str, currency: str, unit_amount: int, recurring: JSON | None, **fields: Any) -> JSON:
    obj: JSON = {
        "id": new_id("price"),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    obj.update(fields)
    return obj


def customer(now: int, **fields: Any) -> JSON:
    cid = new_id("cus", 14)
    obj: JSON = {
        "id": cid,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": cid[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update(fields)
    return obj


def checkout_session(now: int, **fields: Any) -> JSON:
    obj: JSON = {
        "id": new_id("cs_test", 58),
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": None,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "expires_at": now + 24 * 3600,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": {},
        "mode": "subscription",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
        "wallet_options": None,
    }
    obj.update(fields)
    return obj


def customer_details(cust: JSON) -> JSON:
    return {
        "address": cust.get("address") or null_address(),
        "business_name": None,
        "email": cust.get("email"),
        "individual_name": None,
        "name": cust.get("name"),
        "phone": cust.get("phone"),
        "tax_exempt": "none",
        "tax_ids": [],
    }


def portal_session(now: int, customer_id: str, return_url: str | None) -> JSON:
    return {
        "id": new_id("bps"),
        "object": "billing_portal.session",
        "configuration": "bpc_sandboxdefault",
        "created": now,
        "customer": customer_id,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": None,
    }


def webhook_endpoint(now: int, url: str, enabled_events: list[str], secret: str, **fields: Any) -> JSON:
    obj: JSON = {
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": now,
        "description": None,
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": {},
        "_secret": secret,
        "status": "enabled",
        "url": url,
    }
    obj.update(fields)
    return obj
