"""Hold a JSON object served by the sandbox against two authorities written by Stripe, not by us.

1. The typed resource classes of the installed stripe SDK (16.1, generated from Stripe's OpenAPI spec of the pinned
   version): their class-level annotations are every field the version has, and their nested classes the fields of
   sub-objects. A field the SDK does not annotate is a field the version does not have (`invoice.charge`,
   `invoice.payment_intent`, `invoice.paid`, `invoice.subscription`, `subscription.current_period_end`, ...).
2. Stripe's `fixtures3.json` (from stripe/openapi): one example object per type, with every field Stripe always
   returns (null where not set). Fields the SDK annotates but the fixture lacks are the ones Stripe returns only in
   some cases (`deleted`, `tiers`, ...) or only when asked (includable fields).

An object of type T must carry exactly the fields of fixture[T] that the SDK annotates, minus T's includable fields
unless `expand[]` named them, plus those it named. An SDK field the fixture lacks (one Stripe returns only in some
cases) is reported too: the sandbox emulates none of those cases. A sub-object (no `object` key) must carry only
fields its SDK class annotates and at least those the fixture's example shows. Lists carry exactly `object`, `data`,
`has_more`, `url`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Set as AbstractSet
from typing import Any

import stripe
from stripe._stripe_object import UntypedStripeObject

SDK_CLASSES: dict[str, type[stripe.StripeObject]] = {
    "billing_portal.configuration": stripe.billing_portal.Configuration,
    "billing_portal.session": stripe.billing_portal.Session,
    "charge": stripe.Charge,
    "checkout.session": stripe.checkout.Session,
    "coupon": stripe.Coupon,
    "customer": stripe.Customer,
    "discount": stripe.Discount,
    "event": stripe.Event,
    "invoice": stripe.Invoice,
    "invoice_payment": stripe.InvoicePayment,
    "item": stripe.LineItem,
    "line_item": stripe.InvoiceLineItem,
    "payment_intent": stripe.PaymentIntent,
    "payment_method": stripe.PaymentMethod,
    "plan": stripe.Plan,
    "price": stripe.Price,
    "product": stripe.Product,
    "promotion_code": stripe.PromotionCode,
    "refund": stripe.Refund,
    "setup_intent": stripe.SetupIntent,
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "subscription_schedule": stripe.SubscriptionSchedule,
    "test_helpers.test_clock": stripe.test_helpers.TestClock,
}
"""Every object type the product meets (the value of `object`) and the SDK class that types it."""

INCLUDABLE: dict[str, frozenset[str]] = {
    "charge": frozenset({"refunds"}),
    "checkout.session": frozenset({"line_items"}),
    "customer": frozenset({"cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids"}),
    "invoice": frozenset({"payments"}),
    "price": frozenset({"currency_options", "tiers"}),
    "plan": frozenset({"tiers"}),
}
"""Fields Stripe's API reference marks "includable": returned only when `expand[]` names them."""

FIXTURE_STALE: dict[str, frozenset[str]] = {"invoice": frozenset({"subscription"})}
"""Fields fixtures3.json still shows that the pinned version removed (the SDK has no such attribute): the SDK wins.
The conformance test asserts this is exactly the set of such disagreements, so it cannot hide a new one."""

EMULATED_CASES: dict[str, frozenset[str]] = {"subscription": frozenset({"status_details"})}
"""Fields the SDK has and the fixture lacks because Stripe returns them only in some cases, for the cases the
sandbox emulates: `subscription.status_details` appears on a paused subscription (a trial that ended without a
payment method). Allowed there, never required."""

OPTIONAL_NOTE = "(Stripe returns it only in cases we do not emulate)"


def sdk_fields(cls: type) -> set[str]:
    return {name for name in inspect.get_annotations(cls) if name != "OBJECT_NAME"}


LIST_FIELDS = frozenset(sdk_fields(stripe.ListObject) | {"object"})
"""A list's fields: the SDK's ListObject annotations and its `object` ("list"), which the SDK reads untyped."""


def _nested_class(annotation: Any) -> type | None:
    """The SDK's nested class typing a field (through Optional / List / Union), if it is a typed sub-object."""
    if isinstance(annotation, type):
        if issubclass(annotation, stripe.StripeObject) and not issubclass(annotation, UntypedStripeObject):
            return annotation if sdk_fields(annotation) else None
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.List):  # noqa: UP006
        for arg in typing.get_args(annotation):
            found = _nested_class(arg)
            if found is not None:
                return found
    return None


class Checker:
    def __init__(self, fixtures: dict[str, Any]) -> None:
        self.fixtures = fixtures
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def check(self, obj: Any, expand: list[str] | tuple[str, ...] = (), where: str = "") -> list[str]:
        """Problems found in one served object (also recorded in `self.problems`); [] when it conforms."""
        before = len(self.problems)
        self._value(obj, None, None, where or (obj.get("object", "?") if isinstance(obj, dict) else "?"), "", expand)
        return self.problems[before:]

    def _expanded(self, path: str, expand: list[str] | tuple[str, ...]) -> bool:
        return any(p == path or p.startswith(path + ".") for p in expand)

    def _value(
        self, value: Any, annotation: Any, fixture: Any, where: str, path: str, expand: list[str] | tuple[str, ...]
    ) -> None:
        if isinstance(value, list):
            item_fixture = fixture[0] if isinstance(fixture, list) and fixture else None
            for i, item in enumerate(value):
                self._value(item, annotation, item_fixture, f"{where}[{i}]", path, expand)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("object")
        if kind == "list":
            self._list(value, where, path, expand)
        elif isinstance(kind, str) and "id" in value:
            self._object(value, kind, where, path, expand)
        else:
            nested = _nested_class(annotation)
            if nested is not None:
                self._nested(value, nested, fixture if isinstance(fixture, dict) else {}, where, path, expand)

    def _list(self, value: dict[str, Any], where: str, path: str, expand: list[str] | tuple[str, ...]) -> None:
        self._compare(where, set(value), LIST_FIELDS, LIST_FIELDS)
        for i, item in enumerate(value.get("data") or []):
            self._value(item, None, None, f"{where}.data[{i}]", _join(path, "data"), expand)

    def _object(
        self, value: dict[str, Any], kind: str, where: str, path: str, expand: list[str] | tuple[str, ...]
    ) -> None:
        deleted = value.get("deleted") is True
        fixture_kind = f"deleted_{kind}" if deleted else kind
        cls = SDK_CLASSES.get(kind)
        if cls is None or fixture_kind not in self.fixtures:
            self.problems.append(f"{where}: object type {fixture_kind!r} is not one the conformance test knows")
            return
        self.seen.add(fixture_kind)
        fixture = self.fixtures[fixture_kind]
        sdk = sdk_fields(cls)
        if deleted:
            sdk = set(fixture) | {"deleted"}
        includable = INCLUDABLE.get(kind, frozenset())
        asked = {f for f in includable if self._expanded(_join(path, f), expand)}
        required = (set(fixture) & sdk) - includable | asked
        label = f"{where} ({kind})"
        for field in sorted(set(value) - required):
            if field in includable:
                self.problems.append(f"{label}: extra field {field!r} (includable: only when expand[] names it)")
            elif field in sdk and field not in EMULATED_CASES.get(kind, frozenset()):
                self.problems.append(
                    f"{label}: extra field {field!r} (Stripe returns it only in cases we do not emulate)"
                )
        self._compare(label, set(value), required, sdk)
        hints = inspect.get_annotations(cls)
        for field, item in value.items():
            self._value(item, hints.get(field), fixture.get(field), f"{where}.{field}", _join(path, field), expand)

    def _nested(
        self,
        value: dict[str, Any],
        cls: type,
        fixture: dict[str, Any],
        where: str,
        path: str,
        expand: list[str] | tuple[str, ...],
    ) -> None:
        sdk = sdk_fields(cls)
        self._compare(where, set(value), set(fixture) & sdk, sdk)
        hints = inspect.get_annotations(cls)
        for field, item in value.items():
            self._value(item, hints.get(field), fixture.get(field), f"{where}.{field}", _join(path, field), expand)

    def _compare(self, where: str, served: set[str], required: AbstractSet[str], allowed: AbstractSet[str]) -> None:
        for field in sorted(served - set(allowed)):
            self.problems.append(f"{where}: extra field {field!r} (not a field of the pinned version)")
        for field in sorted(set(required) - served):
            self.problems.append(f"{where}: missing field {field!r}")


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field
