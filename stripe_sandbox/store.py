"""In-memory state of the sandbox: objects by kind, ids, the sandbox clock, events, persistence."""

from __future__ import annotations

import copy
import json
import os
import secrets
import string
import tempfile
import time
from collections.abc import Callable
from typing import Any

from payment.stripe.version import API_VERSION

JSON = dict[str, Any]

ALPHABET = string.ascii_letters + string.digits

# id prefix -> object kind (the value of "object")
PREFIX_KIND: dict[str, str] = {
    "prod": "product",
    "price": "price",
    "cus": "customer",
    "cs": "checkout.session",
    "sub": "subscription",
    "sub_sched": "subscription_schedule",
    "in": "invoice",
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "bps": "billing_portal.session",
    "bpc": "billing_portal.configuration",
    "evt": "event",
    "we": "webhook_endpoint",
    "pm": "payment_method",
    "inpay": "invoice_payment",
    "clock": "test_helpers.test_clock",
    "seti": "setup_intent",
    "promo": "promotion_code",
    "di": "discount",
}
KIND_PREFIX = {kind: prefix for prefix, kind in PREFIX_KIND.items()}


def new_id(prefix: str, length: int = 24) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{prefix}_{body}"


def kind_of_id(object_id: str) -> str | None:
    two = "_".join(object_id.split("_", 2)[:2])  # "sub_sched_..." is a schedule, "sub_..." a subscription
    return PREFIX_KIND.get(two) or PREFIX_KIND.get(object_id.split("_", 1)[0])


def public(obj: Any) -> Any:
    """A deep copy without internal keys (those starting with an underscore)."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


class Store:
    """All sandbox state. Handlers run on one event loop, so plain dicts need no locking."""

    def __init__(self, state_file: str | None = None) -> None:
        self.state_file = state_file
        self.objects: dict[str, dict[str, JSON]] = {}
        self.clock_offset = 0.0
        self.seq = 0
        self.idempotency: dict[str, JSON] = {}
        self.faults: list[JSON] = []
        self.current_request: JSON = {"id": None, "idempotency_key": None}
        self.on_event: Callable[[JSON], int] = lambda event: 0
        self._clock_override: int | None = None
        # the time of the earliest time-driven action (billing.run_due), known while nothing changed since it was
        # found: an API GET before it has nothing to run and skips the scan of every object (see app.py)
        self.next_due_at: float | None = None
        if state_file and os.path.exists(state_file):
            self.load()

    # clock -------------------------------------------------------------------------------
    def now(self) -> int:
        if self._clock_override is not None:
            return self._clock_override
        return int(time.time() + self.clock_offset)

    def set_time(self, ts: int) -> None:
        """Move the clock forward to ts (never backwards)."""
        if ts > self.now():
            self.clock_offset = ts - time.time()

    # objects -----------------------------------------------------------------------------
    def add(self, obj: JSON) -> JSON:
        self.seq += 1
        obj["_seq"] = self.seq
        self.objects.setdefault(obj["object"], {})[obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str) -> JSON | None:
        return self.objects.get(kind, {}).get(object_id)

    def find(self, object_id: str) -> JSON | None:
        kind = kind_of_id(object_id)
        return self.get(kind, object_id) if kind else None

    def all(self, kind: str) -> list[JSON]:
        """Objects of a kind, newest first (Stripe's list order)."""
        items = list(self.objects.get(kind, {}).values())
        items.sort(key=lambda o: (o.get("created", 0), o["_seq"]), reverse=True)
        return items

    def delete(self, kind: str, object_id: str) -> None:
        self.objects.get(kind, {}).pop(object_id, None)

    # events ------------------------------------------------------------------------------
    def emit(self, event_type: str, obj: JSON, previous: JSON | None = None) -> JSON:
        data: JSON = {"object": public(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: JSON = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": dict(self.current_request),
            "type": event_type,
        }
        self.add(event)
        event["pending_webhooks"] = self.on_event(event)
        return event

    # persistence -------------------------------------------------------------------------
    def reset(self) -> None:
        self.objects = {}
        self.clock_offset = 0.0
        self.idempotency = {}
        self.faults = []
        self.save()

    def snapshot(self) -> JSON:
        return {"objects": self.objects, "clock_offset": self.clock_offset, "seq": self.seq}

    def save(self) -> None:
        if not self.state_file:
            return
        directory = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.snapshot(), fh)
        os.replace(tmp, self.state_file)

    def load(self) -> None:
        assert self.state_file
        with open(self.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        self.objects = data.get("objects", {})
        self.clock_offset = float(data.get("clock_offset", 0.0))
        self.seq = int(data.get("seq", 0))
