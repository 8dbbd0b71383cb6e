"""Admin subscriptions list at scale: ours (keyset + exact count) beside the bare SQL and SQLAdmin's stock list.

    python benchmarks/admin_subscriptions_list.py [--rows 1000000] [--runs 15] [--data-dir DIR] [--reuse]

Seeds 1,000,000 subscriptions (60 % active) into its own database (an embedded PostgreSQL in a temporary folder,
or `--data-dir` kept for `--reuse`, or a new database on TEST_DATABASE_URL's server), then times whole HTTP
requests through the real app, signed in, each as p50 and p95 of `--runs` (with the load average after it):

  ours:  the first page with the exact total, unfiltered and filtered by status; a deep infinite-scroll page
         (the fragment after the cursor half-way down the table, ~10,000 scroll pages in)
  bare:  the floor: the same page's SQL (50 rows joined with customer and plan, keyset) and its exact total
         (from the running totals), run with asyncpg on one connection, no HTTP, no rendering
  stock: a plain sqladmin.ModelView of the same table on the same database: page 1 (count + LIMIT) and the page
         at the same depth (count + OFFSET 500,000)

To compare with the code a change replaces, run the same script from a checkout of it on the same `--data-dir`
with `--reuse` (the bare figures of both runs show how busy the machine was).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqladmin import Admin, ModelView
from starlette.applications import Starlette

from benchmarks.pgserver import server
from payment import migrate
from payment.bootstrap import build_services, create_app
from payment.config import Settings
from payment.dburl import libpq_url, with_database
from payment.models import Subscription

DATABASE = "aquoris_admin_list_bench"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"
PAGE = 50
LIST = "/admin/subscription/list"

# The rows are valid by construction: skip the per-row foreign key triggers (superuser only) to seed in seconds.
SEED_SQL = """
SET session_replication_role = replica;
INSERT INTO plans (slug, name, price_cents, currency, interval, stripe_price_id, features)
VALUES ('free', 'Free', 0, 'thb', 'month', NULL, '[]'), ('pro', 'PRO', 29900, 'thb', 'month', 'price_pro', '[]'),
       ('pro-year', 'PRO yearly', 299000, 'usd', 'year', 'price_pro_year', '[]');
INSERT INTO customers (external_user_id, email, stripe_customer_id)
SELECT 'user-' || g, 'user' || g || '@example.com', 'cus_' || g FROM generate_series(1, {customers}) g;
INSERT INTO subscriptions (customer_id, plan_id, status, source, stripe_subscription_id,
                           current_period_start, current_period_end, created_at, updated_at)
SELECT 1 + (g % {customers}),
       (SELECT min(id) FROM plans) + (g % 3),
       CASE WHEN g % 10 < 6 THEN 'active' WHEN g % 10 < 8 THEN 'canceled' WHEN g % 10 = 8 THEN 'past_due'
            ELSE 'expired' END,
       CASE WHEN g % 7 = 0 THEN 'manual' ELSE 'stripe' END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'sub_' || g END,
       now() - interval '20 days', now() + interval '10 days', now(), now()
FROM generate_series(1, {rows}) g;
SET session_replication_role = DEFAULT;
SELECT dashboard_rebuild();  -- the running totals the triggers would have kept
"""


async def prepare(server_url: str, rows: int, reuse: bool) -> str:
    url = with_database(server_url, DATABASE)
    admin = await asyncpg.connect(libpq_url(server_url))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists and reuse:
            return url
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    await asyncio.to_thread(migrate.upgrade, url)
    started = time.perf_counter()
    conn = await asyncpg.connect(libpq_url(url))
    try:
        # building the secondary indexes once after the load is far cheaper than a million index insertions
        indexes = await conn.fetch(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition "
            "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid "
            "WHERE i.indrelid = 'subscriptions'::regclass AND c.oid IS NULL"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")
        await conn.execute(SEED_SQL.format(rows=rows, customers=max(1, rows // 10)))
        for index in indexes:
            await conn.execute(index["definition"])
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"seeded {rows:,} subscriptions in {time.perf_counter() - started:.1f} s")
    return url


class StockSubscriptions(ModelView, model=Subscription):
    """SQLAdmin's list as it comes: exact count(*) and LIMIT/OFFSET on every page."""

    column_list = [
        Subscription.id,
        Subscription.customer,
        Subscription.plan,
        Subscription.status,
        Subscription.source,
        Subscription.current_period_end,
        Subscription.cancel_at_period_end,
        Subscription.created_at,
    ]
    column_default_sort = [(Subscription.id, True)]
    page_size = PAGE


Figure = tuple[float, float, str]  # p50 ms, p95 ms, load average when done


async def timed(runs: int, request: Callable[[], Awaitable[object]]) -> Figure:
    await request()  # warm the caches and the pool
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await request()
        times.append((time.perf_counter() - started) * 1000)
        if isinstance(response, httpx.Response):
            assert response.status_code == 200, response.status_code
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, " ".join(f"{v:.2f}" for v in os.getloadavg())


# the list's own statements, as the app sends them (SQLAlchemy renders the same joins and keyset condition)
BARE_PAGE = """
SELECT s.id, s.customer_id, c.email, c.external_user_id, p.name, s.status, s.source, s.current_period_end,
       s.cancel_at, s.cancel_at_period_end, s.created_at
  FROM subscriptions s JOIN customers c ON c.id = s.customer_id JOIN plans p ON p.id = s.plan_id
 WHERE ($1::varchar IS NULL OR s.status = $1) AND ($2::bigint IS NULL OR s.id < $2)
 ORDER BY s.id DESC LIMIT 51
"""
BARE_TOTAL = """
SELECT coalesce(sum(subscriptions), 0) FROM dashboard_subscription_totals WHERE ($1::varchar IS NULL OR status = $1)
"""


async def bare(conn: asyncpg.Connection, status: str | None, after: int | None, total: bool) -> None:
    rows = await conn.fetch(BARE_PAGE, status, after)
    assert len(rows) == PAGE + 1
    if total:
        await conn.fetchval(BARE_TOTAL, status)


async def measure(url: str, rows: int, runs: int) -> None:
    settings = Settings(app_env="test", database_url=url, login_rate_limit=1000)
    services = build_services(settings)
    ours = create_app(services=services)
    stock = Starlette()
    Admin(stock, session_maker=services.db.sessionmaker, base_url="/admin").add_view(StockSubscriptions)
    async with services.db.transaction() as session:
        from payment.admins import service as admins

        if await admins.find_by_email(session, ADMIN_EMAIL) is None:
            await admins.create_admin(session, email=ADMIN_EMAIL, name="Bench", password=ADMIN_PASSWORD, actor="bench")
    async with services.db.session() as session:
        from sqlalchemy import func, select

        ids = (
            await session.execute(select(Subscription.id).order_by(Subscription.id.desc()).offset(rows // 2).limit(1))
        ).scalar_one()
    deep_page = rows // 2 // PAGE + 1
    transport = httpx.ASGITransport(app=ours, client=("127.0.0.1", 50000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=stock), base_url="http://bench") as plain,
    ):
        login = await client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        signed_in = await client.post(
            "/admin/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed_in.status_code == 302, signed_in.status_code
        first = await client.get("/admin/subscription/list")
        assert f'data-total-count="{rows}"' in first.text
        deep = await client.get(f"/admin/subscription/list?after={ids}&fragment=1")
        assert deep.text.count("<tr data-row-id") == PAGE

        conn = await asyncpg.connect(libpq_url(url))
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("ours  first page + exact count (all)", lambda: client.get("/admin/subscription/list")),
            ("bare  first page + exact count (all)", lambda: bare(conn, None, None, True)),
            ("ours  first page + exact count (status=active)", lambda: client.get(f"{LIST}?status=active")),
            ("bare  first page + exact count (status=active)", lambda: bare(conn, "active", None, True)),
            ("ours  first page + exact count (status=past_due)", lambda: client.get(f"{LIST}?status=past_due")),
            ("bare  first page + exact count (status=past_due)", lambda: bare(conn, "past_due", None, True)),
            (
                f"ours  deep scroll page (after id {ids}, ~{deep_page:,} pages in)",
                lambda: client.get(f"{LIST}?after={ids}&fragment=1"),
            ),
            ("bare  deep scroll page", lambda: bare(conn, None, ids, False)),
            ("stock page 1 (count + LIMIT 50)", lambda: plain.get(f"{LIST}?page=1&pageSize={PAGE}")),
            (
                f"stock page {deep_page:,} (count + OFFSET {(deep_page - 1) * PAGE:,})",
                lambda: plain.get(f"{LIST}?page={deep_page}&pageSize={PAGE}"),
            ),
        ]
        figures = [(label, await timed(runs, request)) for label, request in cases]
        await conn.close()
        async with services.db.session() as session:
            total = (await session.execute(select(func.count()).select_from(Subscription))).scalar_one()
    await services.db.dispose()
    print(f"\nsubscriptions: {total:,}; {runs} requests each (ours and stock: whole HTTP requests through the app)")
    for label, (p50, p95, load) in figures:
        print(f"  {label:<62} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  [load {load}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data-dir")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    with server(args.data_dir) as server_url:
        url = asyncio.run(prepare(server_url, args.rows, args.reuse))
        asyncio.run(measure(url, args.rows, args.runs))


if __name__ == "__main__":
    main()
