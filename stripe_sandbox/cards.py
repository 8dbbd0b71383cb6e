"""Stripe's test card numbers and what they do in the sandbox."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .store import JSON

# number -> (behavior, decline_code, message)
DECLINES: dict[str, tuple[str, str, str]] = {
    "4000000000000002": ("decline", "generic_decline", "Your card was declined."),
    "4000000000009995": ("decline", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000000341": ("fail_on_charge", "generic_decline", "Your card was declined."),
}
DECLINED_MESSAGE = "Your card was declined."


@dataclass
class CardError(Exception):
    message: str
    code: str = "card_declined"
    decline_code: str | None = None
    param: str | None = None


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or number.startswith("2"):
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "unknown"


def parse_card(number: str, expiry: str, cvc: str, now_year: int, now_month: int) -> JSON:
    """Validate the form fields; return a card dict (number kept internally) or raise CardError."""
    digits = re.sub(r"[\s-]", "", number or "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        raise CardError("Your card number is invalid.", code="invalid_number", param="number")
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry or "")
    if not match:
        raise CardError("Your card's expiration date is incomplete.", code="invalid_expiry_year", param="exp")
    month, year = int(match.group(1)), int(match.group(2))
    year = year + 2000 if year < 100 else year
    if not 1 <= month <= 12:
        raise CardError("Your card's expiration month is invalid.", code="invalid_expiry_month", param="exp")
    if (year, month) < (now_year, now_month):
        raise CardError("Your card's expiration date is in the past.", code="invalid_expiry_year", param="exp")
    if not re.fullmatch(r"\d{3,4}", (cvc or "").strip()):
        raise CardError("Your card's security code is incomplete.", code="incorrect_cvc", param="cvc")
    behavior = DECLINES.get(digits, ("ok", "", ""))[0]
    return {
        "number": digits,
        "last4": digits[-4:],
        "brand": brand_of(digits),
        "exp_month": month,
        "exp_year": year,
        "fingerprint": hashlib.sha256(digits.encode()).hexdigest()[:16],
        "behavior": behavior,
    }


def charge_error(card_number: str) -> CardError | None:
    """The error a charge on this card produces, or None when it succeeds."""
    decline = DECLINES.get(card_number)
    if decline is None:
        return None
    _, decline_code, message = decline
    return CardError(message, decline_code=decline_code)
