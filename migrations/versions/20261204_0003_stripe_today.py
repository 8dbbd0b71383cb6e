"""Stripe as it is today: each event's API version, a subscription's `cancel_at`, and MRR months by our calendar.

- `stripe_events.api_version`: the version Stripe rendered the event in (the webhook endpoint's), shown to admins
  when it is not the one the service pins.
- `subscriptions.cancel_at`: when Stripe will end a subscription; since 2025-07-30.basil it can be set (through the
  `min_period_end` / `max_period_end` enums) with `cancel_at_period_end` false.
- `dashboard_manual_period_us` counts whole months the way the service adds them (Jan 31 + 1 month = Feb 28, the
  month's last day), so a manual "1 month" payment from Jan 31 is one month of MRR, not 28/30 of one as `age()` made
  it; the running totals are rebuilt with the new lengths.

Revision ID: 0003_stripe_today
Revises: 0002e
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_stripe_today"
down_revision: str | None = "0007_roles_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Whole months m = the most months that, added to the start (PostgreSQL clamps to the month's last day as the service
# does), do not pass the end; the rest is measured exactly. A month counts 30 days (2,592,000,000,000 us) as before.
MONTHS_BY_OUR_CALENDAR = """
CREATE OR REPLACE FUNCTION dashboard_manual_period_us(p_source text, p_paid bigint, p_currency text,
                                                      p_start timestamptz, p_end timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_source = 'manual' AND p_paid > 0 AND p_currency IS NOT NULL AND p_start IS NOT NULL
                   AND p_end > p_start THEN
    (m * 2592000000000 + extract(epoch FROM e - (s + make_interval(months => m))) * 1000000)::bigint
  END
  FROM (SELECT s, e, CASE WHEN s + make_interval(months => n) > e THEN n - 1 ELSE n END AS m
          FROM (SELECT s, e, ((extract(year FROM e) - extract(year FROM s)) * 12
                              + extract(month FROM e) - extract(month FROM s))::int AS n
                  FROM (SELECT p_start AT TIME ZONE 'UTC' AS s, p_end AT TIME ZONE 'UTC' AS e) t) u) v
$$"""

MONTHS_BY_AGE = """
CREATE OR REPLACE FUNCTION dashboard_manual_period_us(p_source text, p_paid bigint, p_currency text,
                                                      p_start timestamptz, p_end timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_source = 'manual' AND p_paid > 0 AND p_currency IS NOT NULL AND p_start IS NOT NULL
                   AND p_end > p_start THEN
    ((extract(year FROM a) * 12 + extract(month FROM a)) * 2592000000000
     + extract(epoch FROM (p_end AT TIME ZONE 'UTC') - ((p_start AT TIME ZONE 'UTC')
         + make_interval(months => (extract(year FROM a) * 12 + extract(month FROM a))::int))) * 1000000)::bigint
  END
  FROM (SELECT age(p_end AT TIME ZONE 'UTC', p_start AT TIME ZONE 'UTC') AS a) x
$$"""


def upgrade() -> None:
    op.add_column("stripe_events", sa.Column("api_version", sa.String(length=32), nullable=True))
    op.add_column("subscriptions", sa.Column("cancel_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(MONTHS_BY_OUR_CALENDAR)
    op.execute("SELECT dashboard_rebuild()")


def downgrade() -> None:
    op.execute(MONTHS_BY_AGE)
    op.execute("SELECT dashboard_rebuild()")
    op.drop_column("subscriptions", "cancel_at")
    op.drop_column("stripe_events", "api_version")
