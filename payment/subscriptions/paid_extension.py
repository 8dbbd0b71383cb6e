"""An admin's extension of a paid Stripe subscription, told apart from a real trial.

Stripe moves a subscription's next charge without billing the added days only through `trial_end`, and then reports
the subscription as `trialing`. The customer has paid, so for us it stays `active` and renews on that date: the
extension marks the Stripe subscription's metadata with the trial end it set, and every copy of Stripe's answer onto
our row goes through `as_seen_by_us` first.
"""

from __future__ import annotations

from typing import Any

EXTENDED_UNTIL = "aquoris_extended_until"


def marker(trial_end: int) -> dict[str, str]:
    """The metadata an extension sets beside `trial_end` on a subscription that is active (not in a real trial)."""
    return {EXTENDED_UNTIL: str(trial_end)}


def is_paid_extension(data: dict[str, Any]) -> bool:
    """Stripe says trialing only because an admin extended a paying subscription up to this trial end."""
    trial_end = data.get("trial_end")
    metadata = data.get("metadata") or {}
    return (
        data.get("status") == "trialing"
        and trial_end is not None
        and str(metadata.get(EXTENDED_UNTIL) or "") == str(int(trial_end))
    )


def as_seen_by_us(data: dict[str, Any]) -> dict[str, Any]:
    """Stripe's subscription object with an extension's trial read as what it is: active, no trial."""
    if not is_paid_extension(data):
        return data
    return {**data, "status": "active", "trial_end": None, "trial_start": None}
