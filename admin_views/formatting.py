"""How the admin shows money, times and JSON details."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from markupsafe import Markup, escape

# Both currencies we sell in have two decimal places (satang, cents).
MINOR_UNITS = {"thb": 100, "usd": 100}


def money(amount_cents: int | None, currency: str | None) -> str:
    """29900, "thb" -> "THB 299.00" (Babel; never a float)."""
    if amount_cents is None or not currency:
        return ""
    amount = Decimal(amount_cents) / MINOR_UNITS.get(currency.lower(), 100)
    return str(format_currency(amount, currency.upper(), locale="en_US", format="¤¤ #,##0.00", currency_digits=False))


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def details_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# status -> (label an operator reads, Tabler colour class)
STATUS_BADGES = {
    "active": ("Active", "bg-green-lt"),
    "trialing": ("Trial", "bg-azure-lt"),
    "past_due": ("Past due", "bg-orange-lt"),
    "canceled": ("Canceled", "bg-secondary-lt"),
    "expired": ("Expired", "bg-secondary-lt"),
    "incomplete": ("Incomplete", "bg-yellow-lt"),
    "incomplete_expired": ("Incomplete, expired", "bg-secondary-lt"),
    "unpaid": ("Unpaid", "bg-red-lt"),
    "paused": ("Paused", "bg-yellow-lt"),
    "paid": ("Paid", "bg-green-lt"),
    "open": ("Open", "bg-blue-lt"),
    "draft": ("Draft", "bg-secondary-lt"),
    "void": ("Void", "bg-secondary-lt"),
    "uncollectible": ("Uncollectible", "bg-red-lt"),
    "payment_failed": ("Payment failed", "bg-red-lt"),
    "refunded": ("Refunded", "bg-purple-lt"),
    "partially_refunded": ("Partially refunded", "bg-pink-lt"),
    "pending": ("Pending", "bg-yellow-lt"),
    "succeeded": ("Succeeded", "bg-green-lt"),
    "failed": ("Failed", "bg-red-lt"),
}


def status_label(status: str | None) -> str:
    """past_due -> "Past due": never the raw enum text on a page."""
    if not status:
        return ""
    return STATUS_BADGES.get(status, (status.replace("_", " ").capitalize(), ""))[0]


def status_badge(status: str | None) -> Markup:
    """A coloured badge with the human label; data-status keeps the raw value for scripts and tests."""
    if not status:
        return Markup("")
    label, colour = STATUS_BADGES.get(status, (status_label(status), "bg-secondary-lt"))
    return Markup('<span class="badge {} status-badge" data-status="{}">{}</span>').format(
        colour, escape(status), label
    )
