"""The invoice CSV export at 1,000,000 rows: streamed in constant memory.

    python benchmarks/invoice_export.py [--rows 1000000] [--data-dir DIR] [--reuse]

Seeds `--rows` invoices (95 % paid, each paid one with its tax invoice document, some customer names that start
with "=") into its own database, serves the real app with uvicorn in a thread, signs in and downloads
/admin/exports/invoices.csv over HTTP, counting rows as they arrive. The process's resident memory (VmRSS, server
and client together) is sampled every 20 ms: the baseline is a filtered export of about 1 % of the rows in the same
run; constant memory means the full export peaks at about the same figure.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from benchmarks.pgserver import server
from payment import migrate
from payment.bootstrap import create_app
from payment.config import Settings
from payment.dburl import libpq_url, with_database
from payment.embedded_pg import free_port

DATABASE = "aquoris_export_bench"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"

SEED_SQL = """
SET session_replication_role = replica;
INSERT INTO customers (external_user_id, email, name, stripe_customer_id)
SELECT 'user-' || g, 'user' || g || '@example.com',
       CASE WHEN g % 100 = 0 THEN '=HYPERLINK("http://evil.example","x' || g || '")' ELSE 'ลูกค้า ' || g END,
       'cus_' || g FROM generate_series(1, {customers}) g;
INSERT INTO seller_profiles (legal_name, address, tax_id) VALUES ('บริษัท อควอริส จำกัด', 'Bangkok', '0105553123452');
INSERT INTO invoices (customer_id, source, stripe_invoice_id, amount_cents, currency, status, paid_at, payment_method,
                      created_at, updated_at)
SELECT 1 + (g % {customers}), 'stripe', 'in_' || g, 29900, 'thb',
       CASE WHEN g % 20 = 0 THEN 'open' ELSE 'paid' END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE now() - (g || ' seconds')::interval END, 'card', now(), now()
FROM generate_series(1, {rows}) g;
INSERT INTO documents (issue_key, kind, seller_id, series, year, sequence, number, customer_id, invoice_id,
                       issue_date, seller_snapshot, buyer_name, description, currency, total_cents, net_cents,
                       vat_cents, vat_rate_bp)
SELECT 'tax_invoice:' || i.id, 'tax_invoice', s.id, 'TI', 2026, row_number() OVER (ORDER BY i.id),
       'TI2026-' || lpad((row_number() OVER (ORDER BY i.id))::text, 6, '0'), i.customer_id, i.id, current_date,
       '{{}}', 'buyer', 'Aquoris PRO subscription', 'thb', 29900, 27944, 1956, 700
FROM invoices i CROSS JOIN (SELECT min(id) AS id FROM seller_profiles) s WHERE i.status = 'paid';
SET session_replication_role = DEFAULT;
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
        await conn.execute(SEED_SQL.format(rows=rows, customers=max(1, rows // 10)))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"seeded {rows:,} invoices (and their documents) in {time.perf_counter() - started:.1f} s")
    return url


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """The highest VmRSS seen while the block runs (sampled every 20 ms on a thread)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib())

    def __enter__(self) -> PeakRss:
        self.peak = rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib())


async def export(client: httpx.AsyncClient, query: str) -> tuple[int, int, float, int]:
    """(data rows, bytes, seconds, peak RSS KiB) of one export downloaded as a stream."""
    started = time.perf_counter()
    lines = size = 0
    with PeakRss() as peak:
        async with client.stream("GET", f"/admin/exports/invoices.csv{query}") as response:
            assert response.status_code == 200, response.status_code
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")  # not "\r\n": a chunk may end between the two
    return lines - 1, size, time.perf_counter() - started, peak.peak


async def measure(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        login = await client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        signed_in = await client.post(
            "/admin/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed_in.status_code == 302, signed_in.status_code
        await export(client, "?status=open&customer=1")  # warm-up: imports, pool, plans
        small = await export(client, "?status=open")
        full = await export(client, "")
    print(f"\nRSS before the exports: {rss_kib() / 1024:.0f} MiB (server and client in this process)")
    for label, (rows, size, seconds, peak) in (("baseline: status=open", small), ("full export", full)):
        print(
            f"  {label:<24} {rows:>9,} rows {size / 1e6:8.1f} MB {seconds:7.1f} s "
            f"{rows / max(seconds, 1e-9):>9,.0f} rows/s   peak RSS {peak / 1024:6.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data-dir")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    with server(args.data_dir) as server_url:
        url = asyncio.run(prepare(server_url, args.rows, args.reuse))
        settings = Settings(app_env="test", database_url=url, login_rate_limit=1000)

        async def seed_admin() -> None:
            from payment.admins import service as admins
            from payment.bootstrap import build_services

            services = build_services(settings)
            async with services.db.transaction() as session:
                if await admins.find_by_email(session, ADMIN_EMAIL) is None:
                    await admins.create_admin(
                        session, email=ADMIN_EMAIL, name="Bench", password=ADMIN_PASSWORD, actor="bench"
                    )
            await services.db.dispose()

        asyncio.run(seed_admin())
        port = free_port()
        web = uvicorn.Server(
            uvicorn.Config(
                create_app(settings.replace(base_url=f"http://127.0.0.1:{port}")),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
            )
        )
        thread = threading.Thread(target=lambda: asyncio.run(web.serve()), daemon=True)
        thread.start()
        while not web.started:
            time.sleep(0.05)
        try:
            asyncio.run(measure(f"http://127.0.0.1:{port}"))
        finally:
            web.should_exit = True
            thread.join(15)


if __name__ == "__main__":
    main()
