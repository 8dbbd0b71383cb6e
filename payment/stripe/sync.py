"""What every domain's `upsert_from_stripe` shares: the error for an object that cannot map (yet), the change
record for the audit row, and the newest-event watermark.

The mappings themselves live in their domains (`subscriptions.stripe_sync`, `invoices.stripe_sync`,
`refunds.stripe_sync`); the fields they read come from `payment.stripe.reader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from payment.errors import PaymentError


class SyncError(PaymentError):
    """A Stripe object cannot be mapped onto our rows (yet): the event is retried and, if it keeps failing,
    shown to admins with this message."""

    status_code = 422
    code = "stripe_sync"


@dataclass
class Changes:
    """What one mapping changed, for the audit row."""

    values: dict[str, Any] = field(default_factory=dict)

    def set(self, row: object, name: str, value: Any) -> None:
        old = getattr(row, name)
        if old != value:
            setattr(row, name, value)
            if isinstance(value, datetime):
                self.values[name] = value.isoformat()
            else:
                self.values[name] = str(value) if isinstance(value, Decimal) else value


def later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """The newer of two event times (None stands for none seen)."""
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current
