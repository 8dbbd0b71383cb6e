"""Stripe's webhook signature, checked without the SDK: the webhook endpoint's hot path.

`Stripe-Signature: t=<unix time>,v1=<hex>,v1=<hex>,...` where each `v1` is HMAC-SHA256 over `<t>.<raw body>` with an
endpoint's signing secret. While a secret is being rolled Stripe signs with the old and the new one (several `v1`
entries), and we may hold several secrets: any pair that matches will do. The rules are the SDK's
(`stripe.WebhookSignature.verify_header`): only the `v1` scheme counts, and a timestamp older than the tolerance is
refused (a replay), so the same header the SDK accepts is accepted here (a timestamp must be plain digits, where
the SDK's `int()` would also take `+1`); tests/unit/test_stripe_signature.py holds
the two side by side.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SCHEME = "v1"


def is_signed(payload: bytes, header: str, secrets: Sequence[str], *, tolerance: int, now: float | None = None) -> bool:
    """Whether `header` signs this exact body with one of `secrets`, at most `tolerance` seconds ago."""
    timestamp: str | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == SCHEME:
            signatures.append(value.encode("ascii", "replace"))
    if not signatures or timestamp is None or not timestamp.isdigit():
        return False
    signed = timestamp.encode() + b"." + payload
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        # compare every entry (no early exit) so the time taken says nothing about which one matched
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        return False
    return int(timestamp) >= (time.time() if now is None else now) - tolerance
