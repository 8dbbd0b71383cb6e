"""Dashboard at scale: seed 1,000,000 subscriptions and 5,000,000 invoices, then time each card and the whole page.

    python benchmarks/dashboard.py [--runs 15] [--data-dir DIR] [--reuse]

Uses its own database: an embedded PostgreSQL in a temporary folder (or `--data-dir`, kept for `--reuse`), or a new
database on TEST_DATABASE_URL's server. Prints each card's median time (its own connection and transaction, as the
page runs it) and the median time of the whole admin landing page rendered through the real app, signed in.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dashboard_seed import INVOICES, STEPS, SUBSCRIPTIONS
from benchmarks.pgserver import server
from payment import migrate
from payment.dburl import with_database

DATABASE = "aquoris_dashboard_bench"


async def seeded(server_url: str, *, reuse: bool) -> str:
    """Create, migrate and seed the benchmark database (kept as is with --reuse when it is already seeded)."""
    url = with_database(server_url, DATABASE)
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists and reuse:
            await migrate.upgrade_async(url)
            return url
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    await migrate.upgrade_async(url)
    conn = await asyncpg.connect(url)
    try:
        # the data is consistent by construction; skipping per-row FK triggers makes seeding minutes shorter
        await conn.execute("SET session_replication_role = replica; SET synchronous_commit = off")
        for name, sql in STEPS:
            started = time.perf_counter()
            await conn.execute(sql)
            print(f"  seeded {name} in {time.perf_counter() - started:.1f} s", flush=True)
        # the seed skipped the triggers that keep the dashboard's running totals; recompute them once
        started = time.perf_counter()
        await conn.execute("SELECT dashboard_rebuild()")
        print(f"  dashboard_rebuild() in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(f"  vacuum analyze in {time.perf_counter() - started:.1f} s", flush=True)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM subscriptions) AS s, (SELECT count(*) FROM invoices) AS i"
        )
        assert counts is not None and counts["s"] == SUBSCRIPTIONS and counts["i"] == INVOICES, counts
    finally:
        await conn.close()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--data-dir", help="keep the embedded cluster here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse an already seeded database")
    parser.add_argument("--seed-only", action="store_true")
    args = parser.parse_args()
    with server(args.data_dir) as server_url:
        print(f"seeding {SUBSCRIPTIONS:,} subscriptions and {INVOICES:,} invoices", flush=True)
        url = asyncio.run(seeded(server_url, reuse=args.reuse))
        if args.seed_only:
            return
        from benchmarks.dashboard_timing import measure

        asyncio.run(measure(url, runs=args.runs))


if __name__ == "__main__":
    main()
