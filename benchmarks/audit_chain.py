"""What the tamper-evident audit chain costs: N concurrent writers committing transactions that each write audit
rows, with the chain (audit.record: rows appended at commit to a free lane of the chain, locked for the commit) and
without it (the same rows inserted unchained, the baseline), then `verify_chain` over everything.

    python benchmarks/audit_chain.py [--writers 50] [--transactions 40] [--rows 1]

Uses its own database: an embedded PostgreSQL in a temporary folder, or a new database on TEST_DATABASE_URL's
server. Prints commits per second and commit latency (p50/p95) for both, and the verification rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy import delete

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pgserver import server
from payment import migrate
from payment.audit import service as audit
from payment.audit.chain import chain_key
from payment.audit.verify import verify_chain
from payment.config import DEV_SECRET_KEY
from payment.db import Database
from payment.dburl import libpq_url, with_database
from payment.models import AuditLog

DATABASE = "aquoris_audit_chain_bench"


async def writers(db: Database, count: int, transactions: int, rows: int, *, chained: bool) -> list[float]:
    latencies: list[float] = []
    start = asyncio.Event()

    async def writer(n: int) -> None:
        await start.wait()
        for t in range(transactions):
            began = time.perf_counter()
            async with db.transaction() as session:
                for r in range(rows):
                    details = {"writer": n, "transaction": t, "row": r}
                    if chained:
                        await audit.record(session, actor=audit.SYSTEM, action="bench.chained", details=details)
                    else:
                        session.add(AuditLog(actor=audit.SYSTEM, action="bench.unchained", details=details))
                        await session.flush()
            latencies.append(time.perf_counter() - began)

    tasks = [asyncio.create_task(writer(n)) for n in range(count)]
    start.set()
    await asyncio.gather(*tasks)
    return latencies


def report(label: str, latencies: list[float], elapsed: float) -> None:
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{label:>10}: {len(latencies) / elapsed:8.0f} commits/s   p50 {statistics.median(ordered) * 1000:6.1f} ms"
        f"   p95 {p95 * 1000:6.1f} ms"
    )


async def main(count: int, transactions: int, rows: int) -> None:
    with server() as root:
        conn = await asyncpg.connect(libpq_url(root))
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        await conn.close()
        url = with_database(root, DATABASE)
        await migrate.upgrade_async(url)
        key = chain_key(DEV_SECRET_KEY)
        db = Database(url, pool_size=count, audit_key=key)
        try:
            print(f"{count} writers x {transactions} transactions x {rows} audit row(s)")
            for label, chained in (("baseline", False), ("chained", True), ("baseline", False), ("chained", True)):
                began = time.perf_counter()
                latencies = await writers(db, count, transactions, rows, chained=chained)
                report(label, latencies, time.perf_counter() - began)
            async with db.transaction() as session:  # the baseline's rows are, by design, outside the chain
                await session.execute(delete(AuditLog).where(AuditLog.action == "bench.unchained"))
            began = time.perf_counter()
            async with db.session() as session:
                verdict = await verify_chain(session, key=key)
            elapsed = time.perf_counter() - began
            print(
                f"verify: {verdict.rows} rows in {elapsed:.2f} s ({verdict.rows / elapsed:.0f} rows/s), "
                f"intact={verdict.ok}"
            )
        finally:
            await db.dispose()
            conn = await asyncpg.connect(libpq_url(root))
            await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--transactions", type=int, default=40)
    parser.add_argument("--rows", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.writers, args.transactions, args.rows))
