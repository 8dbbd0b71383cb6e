"""How the admin shows money, times and JSON details."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jinja2
from babel.numbers import format_currency

# Both currencies we sell in have two decimal places (satang, cents).
MINOR_UNITS = {"thb": 100, "usd": 100}


def money(amount_cents: int | None, currency: str | None) -> str:
    """29900, "thb" -> "THB 299.00" (Babel; never a float)."""
    if amount_cents is None or not currency:
        return ""
    amount = Decimal(amount_cents) / MINOR_UNITS.get(currency.lower(), 100)
    return str(format_currency(amount, currency.upper(), locale="en_US", format="¤¤ #,##0.00",
                               currency_digits=False))


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def details_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def install_filters(env: jinja2.Environment) -> None:
    env.filters["money"] = money
    env.filters["when"] = when
    env.filters["details_json"] = details_json
