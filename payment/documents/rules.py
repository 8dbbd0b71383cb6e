"""Pure rules of Thai tax documents: the tax id's check digit, VAT inside a total, numbers, dates, amounts."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from payment.errors import ValidationError

THAI_ZONE = ZoneInfo("Asia/Bangkok")
HEAD_OFFICE = "00000"
DEFAULT_VAT_RATE_BP = 700
_DIGITS13 = re.compile(r"^[0-9]{13}$")
_BRANCH = re.compile(r"^[0-9]{5}$")


def tax_id_check_digit(first_twelve: str) -> int:
    """The 13th digit of a Thai tax id: weights 13..2 over the first twelve digits, (11 - sum mod 11) mod 10."""
    total = sum(int(d) * (13 - i) for i, d in enumerate(first_twelve))
    return (11 - total % 11) % 10


def check_tax_id(raw: str, *, field: str = "tax_id") -> str:
    """A 13-digit Thai tax id (spaces and dashes allowed in input) whose check digit is right."""
    value = re.sub(r"[\s-]", "", raw or "")
    if not _DIGITS13.match(value):
        raise ValidationError("A tax id has 13 digits.", field=field)
    if tax_id_check_digit(value[:12]) != int(value[12]):
        raise ValidationError("This tax id's check digit is wrong; check the number for a typo.", field=field)
    return value


def check_branch_code(raw: str, *, field: str = "branch_code") -> str:
    """Five digits; 00000 is the head office. Empty means the head office."""
    value = (raw or "").strip() or HEAD_OFFICE
    if value.isdigit() and len(value) < 5:
        value = value.zfill(5)
    if not _BRANCH.match(value):
        raise ValidationError("A branch code has 5 digits (00000 for the head office).", field=field)
    return value


def split_vat(total_cents: int, rate_bp: int) -> tuple[int, int]:
    """(amount before VAT, VAT) of a VAT-inclusive total, rounded half up to the minor unit; they add up."""
    if total_cents < 0 or rate_bp < 0:
        raise ValueError("amounts and rates are not negative")
    divisor = 10000 + rate_bp
    net = (total_cents * 10000 * 2 + divisor) // (2 * divisor)
    return net, total_cents - net


def document_number(series: str, year: int, sequence: int) -> str:
    """TI2026-000001: the series, the year and the sequence within that year."""
    return f"{series}{year}-{sequence:06d}"


def thai_date(at: datetime) -> date:
    """The calendar date in Thailand of an instant (documents are dated in Thai time)."""
    return at.astimezone(THAI_ZONE).date()


def amount_text(cents: int) -> str:
    """1,234.56 (both supported currencies have two decimals)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{frac:02d}"


def branch_label(code: str | None) -> str:
    if not code:
        return ""
    if code == HEAD_OFFICE:
        return "สำนักงานใหญ่ / Head office"
    return f"สาขาที่ {code} / Branch {code}"
