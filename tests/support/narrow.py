"""Narrowing for tests: the SDK types Stripe's optional and expandable fields as `X | None` and `str | X | None`;
a test that expects the field filled (or expanded) says so here, and fails with a clear message when it is not."""

from __future__ import annotations

from typing import TypeVar

import stripe

T = TypeVar("T")


def present(value: T | None) -> T:
    """The value of a field the test expects filled."""
    assert value is not None, "expected a value, got None"
    return value


def expanded(value: str | T | None) -> T:
    """An expandable field the request expanded (an object, not its id)."""
    assert value is not None and not isinstance(value, str), f"expected an expanded object, got {value!r}"
    return value


def id_of(value: str | stripe.StripeObject | None) -> str:
    """The id of an expandable field, expanded or not."""
    if isinstance(value, str):
        return value
    assert value is not None, "expected an id or an object, got None"
    found = getattr(value, "id", None)
    assert isinstance(found, str), f"expected an object with an id, got {value!r}"
    return found
