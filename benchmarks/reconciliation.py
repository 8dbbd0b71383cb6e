"""Reconciliation at scale: the drift check over 1,000 and then 10,000 customers, with its time and peak memory.

    python benchmarks/reconciliation.py [--small 1000] [--large 10000] [--subscribe-every 10] [--drifts 10]

An embedded PostgreSQL in a temporary folder (or a new database on TEST_DATABASE_URL's server) holds our rows;
`payment sandbox`, in its own process, is Stripe. Both are seeded in bulk: the sandbox's control API makes the
customers (each with a saved card; every `--subscribe-every`-th one subscribed, its first invoice paid) without
webhooks, and our rows are written from its answer (customers linked to their Stripe ids; each subscription and
its paid invoice mapped by their domain's `upsert_from_stripe`, as webhooks would). Then `--drifts` subscriptions
are canceled in the sandbox with the webhooks dropped, so the check has something to find.

Each measurement runs `payment.reconciliation.check.run_check` in a fresh Python process (so its peak RSS is its own,
never the seeding's or the sandbox's): once plain (duration, peak RSS from getrusage) and once under tracemalloc
(peak of Python allocations; slower, so its duration is not the figure). The small size is measured first, then
the customers are topped up to the large size and measured again in the same run: memory that does not grow with
the number of customers is the claim. Load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import load_average, wait_http  # noqa: E402
from benchmarks.pgserver import fresh_database  # noqa: E402
from payment import migrate  # noqa: E402
from payment.config import DEV_STRIPE_SECRET_KEY  # noqa: E402
from payment.embedded_pg import free_port  # noqa: E402
from payment.invoices import stripe_sync as invoices_sync  # noqa: E402
from payment.models import Customer  # noqa: E402
from payment.reconciliation.check import run_check  # noqa: E402
from payment.subscriptions import stripe_sync  # noqa: E402
from tests.support.app import running_services  # noqa: E402
from tests.support.db import settings_for  # noqa: E402
from tests.support.stripe import World  # noqa: E402


async def control(sandbox_url: str, path: str, data: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=sandbox_url, timeout=600, headers={"Authorization": f"Bearer {DEV_STRIPE_SECRET_KEY}"}
    ) as http:
        response = await http.post(f"/_sandbox/{path}", data=data)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


async def seed(
    settings: Any, sandbox_url: str, count: int, every: int, price: str | None, offset: int
) -> tuple[str, list[str]]:
    """`count` more customers in the sandbox and in our books (and the plan first, when `price` is None); returns
    the price and the Stripe ids of the subscriptions made."""
    async with running_services(settings) as services:
        if price is None:
            plan = await World(services, sandbox_url).plan()
            assert plan.stripe_price_id is not None
            price = plan.stripe_price_id
        made = (
            await control(
                sandbox_url, "bulk/customers", {"count": str(count), "price": price, "subscribe_every": str(every)}
            )
        )["customers"]
        async with services.db.transaction() as session:
            await session.execute(
                insert(Customer),
                [
                    {"external_user_id": f"bench-{offset + n}", "stripe_customer_id": c["id"]}
                    for n, c in enumerate(made)
                ],
            )
            subs = [c["subscription"] for c in made if c["subscription"] is not None]
            for sub in subs:
                await stripe_sync.upsert_from_stripe(session, services.stripe, sub, actor="benchmark")
            for c in made:
                if c["invoice"] is not None:
                    await invoices_sync.upsert_from_stripe(session, services.stripe, c["invoice"], actor="benchmark")
        return price, [s["id"] for s in subs]


def measure(url: str, sandbox_url: str, concurrency: int, traced: bool) -> dict[str, Any]:
    """One check in a fresh process; its own figures back as JSON."""
    args = [sys.executable, __file__, "--measure", url, "--sandbox", sandbox_url, "--concurrency", str(concurrency)]
    if traced:
        args.append("--traced")
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT)
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def measure_here(url: str, sandbox_url: str, concurrency: int, traced: bool) -> None:
    settings = settings_for(url, stripe_api_base=sandbox_url, log_level="WARNING")
    if traced:
        tracemalloc.start()

    async def main() -> dict[str, Any]:
        async with running_services(settings) as services:
            started = time.monotonic()
            result = await run_check(services.db, services.stripe, concurrency=concurrency)
            return {
                "seconds": time.monotonic() - started,
                "customers": result.customers,
                "failed": result.failed_customers,
                "found": result.found,
                "stripe_calls": result.stripe_calls,
            }

    figures = asyncio.run(main())
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if traced:
        figures["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(figures))


def report(size: int, plain: dict[str, Any], traced: dict[str, Any] | None, load_text: str) -> None:
    print(
        f"{size:>6} customers: {plain['seconds']:.1f} s ({plain['customers'] / plain['seconds']:.0f} customers/s, "
        f"{plain['stripe_calls']} Stripe reads), peak RSS {plain['peak_rss_mib']:.0f} MiB"
        + (f", tracemalloc peak {traced['tracemalloc_peak_mib']:.1f} MiB" if traced else "")
        + f"; {plain['found']} drifts found, {plain['failed']} customers failed; {load_text}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--subscribe-every", type=int, default=10)
    parser.add_argument("--drifts", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_here(args.measure, args.sandbox, args.concurrency, args.traced)
        return
    with fresh_database("bench_reconciliation") as url:
        migrate.upgrade(url)
        sandbox_port = free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "payment.cli", "sandbox", "--port", str(sandbox_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{sandbox_url}/_sandbox/clock")
            settings = settings_for(url, stripe_api_base=sandbox_url)
            price: str | None = None
            have = 0
            for size in (args.small, args.large):
                t0 = time.monotonic()
                price, subs = asyncio.run(seed(settings, sandbox_url, size - have, args.subscribe_every, price, have))
                for sub_id in subs[: args.drifts]:
                    asyncio.run(control(sandbox_url, f"subscriptions/{sub_id}/dashboard_cancel", {}))
                have = size
                print(f"seeded up to {size} customers in {time.monotonic() - t0:.1f} s", flush=True)
                plain = measure(url, sandbox_url, args.concurrency, traced=False)
                load_text = load_average()
                traced = None if args.no_tracemalloc else measure(url, sandbox_url, args.concurrency, traced=True)
                report(size, plain, traced, load_text)
        finally:
            sandbox.terminate()
            try:
                sandbox.wait(30)
            except subprocess.TimeoutExpired:
                sandbox.kill()


if __name__ == "__main__":
    main()
