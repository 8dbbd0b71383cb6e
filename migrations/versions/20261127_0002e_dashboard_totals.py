"""Dashboard running totals kept exact by triggers, so the landing page reads a few rows instead of millions.

Four tables (payment/models/dashboard.py) hold each subscription's, invoice's and refund's contribution to the
cards; row triggers take a row's old contribution back and add its new one in the same transaction, touching the
total rows in key order (fewer lock-order deadlocks). `dashboard_rebuild()` recomputes them from scratch: this
migration calls it to fill them, and after bulk loads that bypass triggers (session_replication_role = replica).

Every time bucket is UTC whatever the session's TimeZone. Definitions (see payment/dashboard/metrics.py):
- a subscription "starts counting" at greatest(created_at, trial_end) and stops at ended_at; never-started
  statuses (incomplete, incomplete_expired) and rows that ended before they started count nowhere;
- a manual subscription is worth paid_amount_cents over its period, whose length is measured in microseconds
  with whole calendar months counted as 30 days (period_us; a month = 2,592,000,000,000);
- MRR history counts stripe subscriptions and valid manual payments that are active now or have ended;
- revenue counts invoices in paid / partially_refunded / refunded by paid_at, refunds succeeded by succeeded_at.

Revision ID: 0002e
Revises: 0002d
Create Date: 2026-11-27 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002e"
down_revision: str | None = "0002d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = [
    # length of a manual subscription's period, or NULL when it is not a valid manual payment
    """
    CREATE FUNCTION dashboard_manual_period_us(p_source text, p_paid bigint, p_currency text,
                                               p_start timestamptz, p_end timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN p_source = 'manual' AND p_paid > 0 AND p_currency IS NOT NULL AND p_start IS NOT NULL
                       AND p_end > p_start THEN
        ((extract(year FROM a) * 12 + extract(month FROM a)) * 2592000000000
         + extract(epoch FROM (p_end AT TIME ZONE 'UTC') - ((p_start AT TIME ZONE 'UTC')
             + make_interval(months => (extract(year FROM a) * 12 + extract(month FROM a))::int))) * 1000000)::bigint
      END
      FROM (SELECT age(p_end AT TIME ZONE 'UTC', p_start AT TIME ZONE 'UTC') AS a) x
    $$
    """,
    # the first UTC month boundary at or after an instant
    """
    CREATE FUNCTION dashboard_month_ceiling(p_at timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN date_trunc('month', p_at AT TIME ZONE 'UTC') = p_at AT TIME ZONE 'UTC' THEN p_at
                  ELSE (date_trunc('month', p_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' END
    $$
    """,
    # one subscription's contributions (weight +1 or -1) to the three subscription totals
    """
    CREATE FUNCTION dashboard_subscription_rows(p_sub subscriptions, p_weight int)
    RETURNS TABLE (kind text, status text, source text, plan_id bigint, paid_currency text, period_us bigint,
                   at_time timestamptz, delta_subs bigint, delta_paid bigint)
    LANGUAGE sql STABLE AS $$
      WITH x AS (
        SELECT p_sub.status AS st_status, p_sub.source AS st_source, p_sub.plan_id AS st_plan,
               p_sub.ended_at AS st_end, p_sub.paid_amount_cents AS st_paid, p_sub.paid_currency AS st_currency,
               greatest(p_sub.created_at, coalesce(p_sub.trial_end, p_sub.created_at)) AS st_start,
               dashboard_manual_period_us(p_sub.source, p_sub.paid_amount_cents, p_sub.paid_currency,
                                          p_sub.current_period_start, p_sub.current_period_end) AS st_period
        WHERE p_sub.id IS NOT NULL
      ), e AS (
        SELECT x.*, ev.at_time, ev.sign FROM x, LATERAL (VALUES (x.st_start, 1), (x.st_end, -1)) ev(at_time, sign)
        WHERE ev.at_time IS NOT NULL AND x.st_status NOT IN ('incomplete', 'incomplete_expired')
          AND (x.st_end IS NULL OR x.st_end > x.st_start)
      )
      SELECT 'totals', st_status, st_source, st_plan, CASE WHEN st_period IS NULL THEN '' ELSE st_currency END,
             coalesce(st_period, 0), NULL::timestamptz, p_weight::bigint,
             CASE WHEN st_period IS NULL THEN 0 ELSE p_weight * st_paid END
      FROM x
      UNION ALL
      SELECT 'days', NULL, NULL, NULL, NULL, NULL, at_time, (sign * p_weight)::bigint, 0 FROM e
      UNION ALL
      SELECT 'mrr', NULL, st_source, st_plan, CASE WHEN st_period IS NULL THEN '' ELSE st_currency END,
             coalesce(st_period, 0), dashboard_month_ceiling(at_time), (sign * p_weight)::bigint,
             CASE WHEN st_period IS NULL THEN 0 ELSE sign * p_weight * st_paid END
      FROM e
      WHERE (st_status = 'active' OR st_end IS NOT NULL) AND (st_source = 'stripe' OR st_period IS NOT NULL)
    $$
    """,
    """
    CREATE FUNCTION dashboard_apply_subscription(p_old subscriptions, p_new subscriptions) RETURNS void
    LANGUAGE sql AS $$
      INSERT INTO dashboard_subscription_totals AS t
             (status, source, plan_id, paid_currency, period_us, subscriptions, paid_cents)
      SELECT r.status, r.source, r.plan_id, r.paid_currency, r.period_us, sum(r.delta_subs), sum(r.delta_paid)
      FROM (SELECT * FROM dashboard_subscription_rows(p_old, -1)
            UNION ALL SELECT * FROM dashboard_subscription_rows(p_new, 1)) r
      WHERE r.kind = 'totals' GROUP BY 1, 2, 3, 4, 5 HAVING sum(r.delta_subs) <> 0 OR sum(r.delta_paid) <> 0
      ORDER BY 1, 2, 3, 4, 5
      ON CONFLICT (status, source, plan_id, paid_currency, period_us) DO UPDATE
        SET subscriptions = t.subscriptions + excluded.subscriptions, paid_cents = t.paid_cents + excluded.paid_cents;
      INSERT INTO dashboard_subscription_days AS t (day, delta)
      SELECT (r.at_time AT TIME ZONE 'UTC')::date, sum(r.delta_subs)
      FROM (SELECT * FROM dashboard_subscription_rows(p_old, -1)
            UNION ALL SELECT * FROM dashboard_subscription_rows(p_new, 1)) r
      WHERE r.kind = 'days' GROUP BY 1 HAVING sum(r.delta_subs) <> 0 ORDER BY 1
      ON CONFLICT (day) DO UPDATE SET delta = t.delta + excluded.delta;
      INSERT INTO dashboard_mrr_deltas AS t
             (boundary, plan_id, source, paid_currency, period_us, subscriptions, paid_cents)
      SELECT r.at_time, r.plan_id, r.source, r.paid_currency, r.period_us, sum(r.delta_subs), sum(r.delta_paid)
      FROM (SELECT * FROM dashboard_subscription_rows(p_old, -1)
            UNION ALL SELECT * FROM dashboard_subscription_rows(p_new, 1)) r
      WHERE r.kind = 'mrr' GROUP BY 1, 2, 3, 4, 5 HAVING sum(r.delta_subs) <> 0 OR sum(r.delta_paid) <> 0
      ORDER BY 1, 2, 3, 4, 5
      ON CONFLICT (boundary, plan_id, source, paid_currency, period_us) DO UPDATE
        SET subscriptions = t.subscriptions + excluded.subscriptions, paid_cents = t.paid_cents + excluded.paid_cents;
    $$
    """,
    """
    CREATE FUNCTION dashboard_track_subscription() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        PERFORM dashboard_apply_subscription(NULL, NEW);
      ELSIF TG_OP = 'DELETE' THEN
        PERFORM dashboard_apply_subscription(OLD, NULL);
      ELSE
        PERFORM dashboard_apply_subscription(OLD, NEW);
      END IF;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION dashboard_track_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO dashboard_revenue_days AS t (day, currency, paid_cents, refunded_cents)
      SELECT day, currency, sum(amount), 0 FROM (
        SELECT (OLD.paid_at AT TIME ZONE 'UTC')::date AS day, OLD.currency AS currency, -OLD.amount_cents AS amount
        WHERE TG_OP <> 'INSERT' AND OLD.paid_at IS NOT NULL
          AND OLD.status IN ('paid', 'partially_refunded', 'refunded')
        UNION ALL
        SELECT (NEW.paid_at AT TIME ZONE 'UTC')::date, NEW.currency, NEW.amount_cents
        WHERE TG_OP <> 'DELETE' AND NEW.paid_at IS NOT NULL
          AND NEW.status IN ('paid', 'partially_refunded', 'refunded')
      ) x GROUP BY 1, 2 HAVING sum(amount) <> 0 ORDER BY 1, 2
      ON CONFLICT (day, currency) DO UPDATE SET paid_cents = t.paid_cents + excluded.paid_cents;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION dashboard_track_refund() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO dashboard_revenue_days AS t (day, currency, paid_cents, refunded_cents)
      SELECT day, currency, 0, sum(amount) FROM (
        SELECT (OLD.succeeded_at AT TIME ZONE 'UTC')::date AS day, OLD.currency AS currency,
               -OLD.amount_cents AS amount
        WHERE TG_OP <> 'INSERT' AND OLD.succeeded_at IS NOT NULL AND OLD.status = 'succeeded'
        UNION ALL
        SELECT (NEW.succeeded_at AT TIME ZONE 'UTC')::date, NEW.currency, NEW.amount_cents
        WHERE TG_OP <> 'DELETE' AND NEW.succeeded_at IS NOT NULL AND NEW.status = 'succeeded'
      ) x GROUP BY 1, 2 HAVING sum(amount) <> 0 ORDER BY 1, 2
      ON CONFLICT (day, currency) DO UPDATE SET refunded_cents = t.refunded_cents + excluded.refunded_cents;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION dashboard_rebuild() RETURNS void LANGUAGE sql AS $$
      TRUNCATE dashboard_subscription_totals, dashboard_subscription_days, dashboard_mrr_deltas,
               dashboard_revenue_days;
      WITH r AS MATERIALIZED (
        SELECT c.* FROM subscriptions s, LATERAL dashboard_subscription_rows(s, 1) c
      ), totals AS (
        INSERT INTO dashboard_subscription_totals
               (status, source, plan_id, paid_currency, period_us, subscriptions, paid_cents)
        SELECT status, source, plan_id, paid_currency, period_us, sum(delta_subs), sum(delta_paid)
        FROM r WHERE kind = 'totals' GROUP BY 1, 2, 3, 4, 5
      ), days AS (
        INSERT INTO dashboard_subscription_days (day, delta)
        SELECT (at_time AT TIME ZONE 'UTC')::date, sum(delta_subs) FROM r WHERE kind = 'days' GROUP BY 1
      )
      INSERT INTO dashboard_mrr_deltas (boundary, plan_id, source, paid_currency, period_us, subscriptions,
                                        paid_cents)
      SELECT at_time, plan_id, source, paid_currency, period_us, sum(delta_subs), sum(delta_paid)
      FROM r WHERE kind = 'mrr' GROUP BY 1, 2, 3, 4, 5;
      INSERT INTO dashboard_revenue_days (day, currency, paid_cents, refunded_cents)
      SELECT day, currency, sum(paid), sum(refunded) FROM (
        SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, currency, amount_cents AS paid, 0 AS refunded
        FROM invoices WHERE paid_at IS NOT NULL AND status IN ('paid', 'partially_refunded', 'refunded')
        UNION ALL
        SELECT (succeeded_at AT TIME ZONE 'UTC')::date, currency, 0, amount_cents
        FROM refunds WHERE succeeded_at IS NOT NULL AND status = 'succeeded'
      ) x GROUP BY 1, 2;
    $$
    """,
]

TRIGGERS = [
    (
        "subscriptions",
        "dashboard_track_subscription",
        "AFTER INSERT OR DELETE OR UPDATE OF status, source, plan_id, created_at, trial_end, ended_at, "
        "paid_amount_cents, paid_currency, current_period_start, current_period_end",
    ),
    (
        "invoices",
        "dashboard_track_invoice",
        "AFTER INSERT OR DELETE OR UPDATE OF status, paid_at, amount_cents, currency",
    ),
    (
        "refunds",
        "dashboard_track_refund",
        "AFTER INSERT OR DELETE OR UPDATE OF status, succeeded_at, amount_cents, currency",
    ),
]


def upgrade() -> None:
    op.create_table(
        "dashboard_subscription_totals",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("paid_currency", sa.String(length=3), server_default="", nullable=False),
        sa.Column("period_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("subscriptions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "status", "source", "plan_id", "paid_currency", "period_us", name=op.f("pk_dashboard_subscription_totals")
        ),
    )
    op.create_table(
        "dashboard_subscription_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_dashboard_subscription_days")),
    )
    op.create_table(
        "dashboard_mrr_deltas",
        sa.Column("boundary", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("paid_currency", sa.String(length=3), server_default="", nullable=False),
        sa.Column("period_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("subscriptions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "boundary", "plan_id", "source", "paid_currency", "period_us", name=op.f("pk_dashboard_mrr_deltas")
        ),
    )
    op.create_table(
        "dashboard_revenue_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_dashboard_revenue_days")),
    )
    # covering indexes for the two reads that still touch the source tables: recent endings, today's refunds
    op.create_index(
        "ix_subscriptions_dashboard_ended",
        "subscriptions",
        ["ended_at"],
        unique=False,
        postgresql_include=["created_at", "trial_end", "status"],
        postgresql_where=sa.text("ended_at IS NOT NULL"),
    )
    op.create_index(
        "ix_refunds_dashboard_succeeded",
        "refunds",
        ["succeeded_at"],
        unique=False,
        postgresql_include=["currency", "amount_cents"],
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    for sql in FUNCTIONS:
        op.execute(sql)
    for table, function, when in TRIGGERS:
        op.execute(f"CREATE TRIGGER {function} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()")
    op.execute("SELECT dashboard_rebuild()")


def downgrade() -> None:
    for table, function, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {function} ON {table}")
    for name in (
        "dashboard_rebuild()",
        "dashboard_track_refund()",
        "dashboard_track_invoice()",
        "dashboard_track_subscription()",
        "dashboard_apply_subscription(subscriptions, subscriptions)",
        "dashboard_subscription_rows(subscriptions, int)",
        "dashboard_month_ceiling(timestamptz)",
        "dashboard_manual_period_us(text, bigint, text, timestamptz, timestamptz)",
    ):
        op.execute(f"DROP FUNCTION {name}")
    op.drop_index("ix_refunds_dashboard_succeeded", table_name="refunds")
    op.drop_index("ix_subscriptions_dashboard_ended", table_name="subscriptions")
    for table in (
        "dashboard_revenue_days",
        "dashboard_mrr_deltas",
        "dashboard_subscription_days",
        "dashboard_subscription_totals",
    ):
        op.drop_table(table)
