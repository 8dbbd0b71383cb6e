"""The one Stripe API version this service speaks.

The gateway sends it as `Stripe-Version` on every call, the sandbox answers in its shapes, and the reader of Stripe
objects is written for it (and for the older shapes that webhook endpoints created earlier still send).
"""

from typing import Final

API_VERSION: Final = "2026-10-28.endive"
"""The version stripe-python 16.1 sends by default; pinned explicitly so an SDK upgrade cannot move it silently."""

PRE_BASIL_VERSION: Final = "2025-02-24.acacia"
"""The last version before 2025-03-31.basil removed `invoice.charge`, `invoice.payment_intent` and the
subscription-level `current_period_*`; endpoints created on it still deliver events in its shapes."""
