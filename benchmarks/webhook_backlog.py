"""Webhooks backlog: 10,000 signed deliveries posted, then drained by one worker (events applied per second).

    python benchmarks/webhook_backlog.py [--events 10000] [--customers 100] [--senders 16] [--concurrency 4]

Everything runs as in production, each in its own process: an embedded PostgreSQL in a temporary folder (or a new
database on TEST_DATABASE_URL's server), `payment sandbox` as Stripe, `payment serve` as the web app and one
`payment worker`. The sandbox first holds `--customers` real subscriptions (checkout paid, then one renewal); the
backlog is `--events` signed deliveries of those subscriptions' real events (each with its own event id, as
Stripe's stream of updates), posted by `--senders` concurrent clients while no worker runs. Then one worker starts
and drains it; every event is a Stripe read plus a transaction, exactly as in production.

Prints: deliveries accepted per second, events applied per second, and the failures (expected: none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import stripe
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import wait_http  # noqa: E402
from benchmarks.pgserver import fresh_database  # noqa: E402
from payment import migrate  # noqa: E402
from payment.config import DEV_STRIPE_WEBHOOK_SECRET  # noqa: E402
from payment.embedded_pg import free_port  # noqa: E402
from payment.models import StripeEvent  # noqa: E402
from payment.stripe.handlers import HANDLED_TYPES  # noqa: E402
from tests.support.app import running_services  # noqa: E402
from tests.support.db import settings_for  # noqa: E402
from tests.support.stripe import World  # noqa: E402

BENCH_PREFIX = "evt_bench_"


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "payment.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def seed(settings: Any, sandbox_url: str, customers: int) -> list[dict[str, Any]]:
    """Real subscriptions in the sandbox and our customers and plan; returns their handled events."""
    async with running_services(settings) as services:
        world = World(services, sandbox_url)
        plan = await world.plan()
        for _ in range(customers):
            await world.subscribe(await world.customer(), plan)
        await world.advance(31)
        return [e for e in await world.events() if e["type"] in HANDLED_TYPES]


async def deliver(web_url: str, bodies: list[bytes], senders: int) -> tuple[float, dict[int, int]]:
    codes: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            header = stripe.WebhookSignature.generate_signature_header(
                body.decode(), DEV_STRIPE_WEBHOOK_SECRET, int(time.time())
            )
            response = await http.post(
                "/api/v1/webhooks/stripe",
                content=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            codes[response.status_code] = codes.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(base_url=web_url, timeout=30, limits=limits) as http:
        started = time.monotonic()
        await asyncio.gather(*(sender(http) for _ in range(senders)))
        return time.monotonic() - started, codes


async def drain(settings: Any, total: int, timeout: float) -> tuple[float, dict[str, int]]:
    async with running_services(settings) as services:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            async with services.db.session() as session:
                # only the benchmark's deliveries: seeding stored the sandbox's own events beside them
                rows = (
                    await session.execute(
                        select(StripeEvent.status, func.count())
                        .where(StripeEvent.stripe_event_id.like(f"{BENCH_PREFIX}%"))
                        .group_by(StripeEvent.status)
                    )
                ).all()
            counts = {status: int(n) for status, n in rows}
            if counts.get("handled", 0) + counts.get("ignored", 0) + counts.get("failed", 0) >= total:
                return time.monotonic() - started, counts
            if time.monotonic() > deadline:
                return time.monotonic() - started, counts
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs the one worker runs at once")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    with fresh_database("bench_webhooks") as url:
        migrate.upgrade(url)
        sandbox_port, web_port = free_port(), free_port()
        sandbox_url, web_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{web_port}"
        env = {
            **os.environ,
            "APP_ENV": "test",
            "DATABASE_URL": url,
            "STRIPE_API_BASE": sandbox_url,
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "20",
        }
        processes = [start(["sandbox", "--port", str(sandbox_port)], env)]
        try:
            wait_http(f"{sandbox_url}/_sandbox/clock")
            settings = settings_for(url, stripe_api_base=sandbox_url)
            t0 = time.monotonic()
            real = asyncio.run(seed(settings, sandbox_url, args.customers))
            print(f"seeded {args.customers} subscriptions ({len(real)} real events) in {time.monotonic() - t0:.1f} s")
            bodies = []
            for i in range(args.events):
                event = dict(real[i % len(real)])
                event["id"] = f"{BENCH_PREFIX}{i:06d}"
                bodies.append(json.dumps(event, default=str).encode())
            processes.append(start(["serve", "--host", "127.0.0.1", "--port", str(web_port)], env))
            wait_http(f"{web_url}/api/health")
            seconds, codes = asyncio.run(deliver(web_url, bodies, args.senders))
            accepted = codes.get(200, 0)
            print(
                f"deliveries: {accepted} accepted of {len(bodies)} in {seconds:.1f} s = "
                f"{accepted / seconds:.0f} accepted/s with {args.senders} concurrent senders; answers {codes}"
            )
            worker = start(["worker", "--concurrency", str(args.concurrency)], env)
            processes.append(worker)
            seconds, counts = asyncio.run(drain(settings, len(bodies), args.timeout))
            applied = counts.get("handled", 0)
            print(
                f"backlog: {applied} of {len(bodies)} events applied by one worker (concurrency "
                f"{args.concurrency}) in {seconds:.1f} s = {applied / seconds:.1f} events/s; statuses {counts}"
            )
            failures = counts.get("failed", 0) + counts.get("pending", 0)
            print(
                "drained without error"
                if failures == 0 and applied == len(bodies)
                else f"NOT drained: {failures} failed or pending"
            )
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                try:
                    process.wait(40)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
