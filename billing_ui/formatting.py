"""Money and dates for end users, through Babel, in the page's language."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision

BABEL_LOCALES = {"en": "en_US", "th": "th_TH"}
# We do not know the user's zone. Our customers are almost all in Thailand, so every date on the billing page is a
# Bangkok date, in both languages (the same day whichever language the user reads), and the page says so.
BILLING_ZONE = ZoneInfo("Asia/Bangkok")


def money(amount_cents: int, currency: str, language: str) -> str:
    """Integer minor units -> "฿299.00" / "THB 299.00"; Decimal only for display, never floats."""
    code = currency.upper()
    amount = Decimal(amount_cents).scaleb(-get_currency_precision(code))
    text: str = format_currency(amount, code, locale=BABEL_LOCALES.get(language, "en_US"))
    # Babel writes "THB299.00" where the locale has no symbol for the currency: keep the code readable.
    if text[:3] == code and len(text) > 3 and not text[3].isspace():
        text = f"{code}\u00a0{text[3:]}"
    return text


def day(value: datetime | None, language: str) -> str:
    if value is None:
        return ""
    local = value.astimezone(BILLING_ZONE)
    text: str = format_date(local.date(), "long", locale=BABEL_LOCALES.get(language, "en_US"))
    return text
