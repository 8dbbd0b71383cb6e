"""Seed a database at dashboard scale with generate_series: 1,000,000 subscriptions and 5,000,000 invoices.

Used by benchmarks/dashboard.py. Everything is generated server-side from the row number so a run takes minutes, not
hours, and the mix covers what the cards distinguish: both currencies, monthly and yearly plans, a free plan,
stripe/manual/grant sources, trialing, past-due, ended subscriptions, paid/refunded/open invoices and refunds.
"""

from __future__ import annotations

SUBSCRIPTIONS = 1_000_000
INVOICES = 5_000_000
CUSTOMERS = 250_000
REFUNDS = 50_000

PLANS = """
INSERT INTO plans (slug, name, price_cents, currency, interval, stripe_price_id) VALUES
  ('bench-thb-month', 'THB monthly', 29900, 'thb', 'month', 'price_bench_thb_m'),
  ('bench-thb-year', 'THB yearly', 299000, 'thb', 'year', 'price_bench_thb_y'),
  ('bench-usd-month', 'USD monthly', 999, 'usd', 'month', 'price_bench_usd_m'),
  ('bench-usd-year', 'USD yearly', 9900, 'usd', 'year', 'price_bench_usd_y'),
  ('bench-free', 'Free', 0, 'thb', 'month', NULL)
"""

CUSTOMERS_SQL = f"""
INSERT INTO customers (external_user_id, email)
SELECT 'bench-' || g, 'u' || g || '@example.com' FROM generate_series(1, {CUSTOMERS}) g
"""

# source: 6 % manual, 4 % grant, 90 % stripe; status spread over what the cards tell apart
SUBSCRIPTIONS_SQL = f"""
WITH p AS (SELECT array_agg(id ORDER BY slug) AS ids FROM plans WHERE slug LIKE 'bench-%'),
     c AS (SELECT min(id) AS first FROM customers),
     g AS (
       SELECT i,
              CASE WHEN i % 100 < 6 THEN 'manual' WHEN i % 100 < 10 THEN 'grant' ELSE 'stripe' END AS source,
              (i * 7919) % 100 AS r,
              now() - make_interval(days => ((i * 37) % 1095)::int, secs => i % 86400) AS created
       FROM generate_series(1::bigint, {SUBSCRIPTIONS}) i
     )
INSERT INTO subscriptions (customer_id, plan_id, status, source, stripe_subscription_id, current_period_start,
                           current_period_end, ended_at, trial_end, paid_amount_cents, paid_currency, created_at)
SELECT c.first + (g.i % {CUSTOMERS}),
       -- ids sorted by slug: free, thb-month, thb-year, usd-month, usd-year
       p.ids[CASE WHEN g.source = 'grant' AND g.i % 3 = 0 THEN 1 ELSE 2 + (g.i / 7) % 4 END],
       CASE WHEN g.r < 55 THEN 'active' WHEN g.r < 60 THEN 'trialing' WHEN g.r < 63 THEN 'past_due'
            WHEN g.r < 93 THEN CASE WHEN g.source = 'stripe' THEN 'canceled' ELSE 'expired' END
            WHEN g.r < 95 THEN CASE WHEN g.source = 'stripe' THEN 'incomplete_expired' ELSE 'expired' END
            ELSE CASE WHEN g.source = 'stripe' THEN 'unpaid' ELSE 'expired' END END,
       g.source,
       CASE WHEN g.source = 'stripe' THEN 'sub_bench_' || g.i END,
       now() - make_interval(days => (g.i % 30)::int),
       now() - make_interval(days => (g.i % 30)::int) + CASE WHEN g.source = 'manual' THEN interval '3 months'
                                                     ELSE interval '1 month' END,
       CASE WHEN g.r >= 63 THEN g.created + (now() - g.created) * ((g.i % 97) / 97.0) END,
       CASE WHEN g.r >= 55 AND g.r < 60 THEN now() + interval '7 days' END,
       CASE WHEN g.source = 'manual' THEN CASE WHEN g.i % 2 = 0 THEN 89700 ELSE 2997 END END,
       CASE WHEN g.source = 'manual' THEN CASE WHEN g.i % 2 = 0 THEN 'thb' ELSE 'usd' END END,
       g.created
FROM g, p, c
"""

# 90 % paid, 2 % partially refunded, 1 % refunded, 4 % open, 3 % failed; a third in USD; paid over three years
INVOICES_SQL = f"""
WITH s AS (SELECT min(id) AS first FROM subscriptions),
     c AS (SELECT min(id) AS first FROM customers),
     g AS (SELECT i, (i * 7919) % 100 AS r, i % 3 = 0 AS usd FROM generate_series(1::bigint, {INVOICES}) i)
INSERT INTO invoices (customer_id, subscription_id, source, stripe_invoice_id, amount_cents, currency, status,
                      paid_at, payment_method, reference_number, amount_refunded_cents)
SELECT c.first + (g.i % {CUSTOMERS}),
       s.first + (g.i % {SUBSCRIPTIONS}),
       CASE WHEN g.i % 20 = 0 THEN 'manual' ELSE 'stripe' END,
       CASE WHEN g.i % 20 <> 0 THEN 'in_bench_' || g.i END,
       CASE WHEN g.usd THEN 999 + (g.i % 7) * 100 ELSE 29900 + (g.i % 5) * 1000 END,
       CASE WHEN g.usd THEN 'usd' ELSE 'thb' END,
       CASE WHEN g.r < 90 THEN 'paid' WHEN g.r < 92 THEN 'partially_refunded' WHEN g.r < 93 THEN 'refunded'
            WHEN g.r < 97 THEN 'open' ELSE 'payment_failed' END,
       CASE WHEN g.r < 93 THEN now() - make_interval(days => ((g.i * 13) % 1095)::int, secs => g.i % 86400) END,
       CASE WHEN g.i % 20 = 0 THEN 'bank_transfer' ELSE 'card' END,
       CASE WHEN g.i % 20 = 0 THEN 'BENCH-' || g.i END,
       CASE WHEN g.r >= 90 AND g.r < 92 THEN 500
            WHEN g.r = 92 THEN CASE WHEN g.usd THEN 999 + (g.i % 7) * 100 ELSE 29900 + (g.i % 5) * 1000 END
            ELSE 0 END
FROM g, s, c
"""

REFUNDS_SQL = f"""
INSERT INTO refunds (invoice_id, amount_cents, currency, status, created_by, succeeded_at, created_at)
SELECT id, amount_refunded_cents, currency, 'succeeded', 'bench',
       least(paid_at + interval '3 days', now()), least(paid_at + interval '3 days', now())
FROM invoices WHERE status IN ('partially_refunded', 'refunded') ORDER BY id LIMIT {REFUNDS}
"""

STEPS = [
    ("plans", PLANS),
    ("customers", CUSTOMERS_SQL),
    ("subscriptions", SUBSCRIPTIONS_SQL),
    ("invoices", INVOICES_SQL),
    ("refunds", REFUNDS_SQL),
]
