"""What every domain's `upsert_from_stripe` shares: the error for an object that cannot map (yet), the change
record for the audit row, the newest-event watermark, and the "not older than stored" check of a snapshot.

The mappings themselves live in their domains (`subscriptions.stripe_sync`, `invoices.stripe_sync`,
`refunds.stripe_sync`); the fields they read come from `payment.stripe.reader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from payment.errors import PaymentError
from payment.stripe.gateway import StripeGateway


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


def older_than_stored(gateway: StripeGateway, stored_ticket: int | None) -> bool:
    """Whether the snapshot being applied was asked for before the one a row shows (the worker reads Stripe
    before its transaction, so two reads of one object can land in either order). A live read (no ticket) is
    applied as before; the stored ticket stays, so a snapshot asked for later still wins."""
    ticket = gateway.fetch_ticket
    return ticket is not None and stored_ticket is not None and stored_ticket > ticket
