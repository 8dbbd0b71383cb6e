"""Amounts typed by an admin become integer minor units exactly, or are refused in plain words."""

from __future__ import annotations

import pytest

from payment.errors import ValidationError
from payment.payments.service import parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "cents"),
    [
        ("299.00", "thb", 29900),
        ("1,299.5", "THB", 129950),
        ("0.01", "usd", 1),
        (" 42 ", "usd", 4200),
    ],
)
def test_amounts_convert_exactly_to_minor_units(text: str, currency: str, cents: int) -> None:
    assert parse_amount(text, currency) == cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.001", "at most 2 decimals"),
        ("abc", "as a number"),
        ("-5", "more than zero"),
        ("0", "more than zero"),
        ("NaN", "as a number"),
        ("1e20", "too large"),
    ],
)
def test_bad_amounts_are_refused_in_plain_words(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_amount(text, "thb")
