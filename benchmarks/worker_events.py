"""Stripe events applied per second by one `payment worker` while Stripe answers in `--latency-ms`, ours vs before.

    python benchmarks/worker_events.py [--events 2000] [--customers 50] [--latency-ms 150] [--rounds 2]
                                       [--before PATH] [--concurrency N] [--before-concurrency N]

- Stripe: `payment sandbox` in its own process, `--latency-ms` added to every API answer. It first holds
  `--customers` real subscriptions (checkout paid, then one renewal), made and applied with no latency; then it is
  started again on the same state file with the latency.
- The backlog: `--events` signed-body copies (each with its own event id, as Stripe's stream of updates) of the
  renewal's `customer.subscription.updated` and `invoice.paid` events, so 2 x `--customers` Stripe objects; stored
  with their jobs in one transaction, exactly as the webhook stores them (payment/stripe/inbox.py), while the worker
  already waits (its startup is not measured).
- Each side: one `payment worker` process (its own default concurrency unless `--concurrency` /
  `--before-concurrency`), on a fresh copy of the seeded database (`CREATE DATABASE ... TEMPLATE`), from its
  checkout (`--before PATH`, e.g. `git worktree add --detach /tmp/before main`). The before side runs on ours'
  schema: it adds three nullable columns and a sequence the before code never reads.
- Rounds alternate the sides (ours, before / before, ours ...). Each prints events/s (from the commit of the backlog
  to the last event handled), the worker process's CPU ms per event, and the load average beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import load_average, tree_cpu_seconds, wait_listening  # noqa: E402
from benchmarks.pgserver import server  # noqa: E402
from payment import migrate  # noqa: E402
from payment.embedded_pg import free_port  # noqa: E402
from payment.jobs.stripe_events import APPLY_TASK  # noqa: E402
from payment.stripe.handlers import HANDLED_TYPES  # noqa: E402
from payment.stripe.inbox import store_and_defer  # noqa: E402
from tests.support.app import running_services  # noqa: E402
from tests.support.db import settings_for  # noqa: E402
from tests.support.stripe import World  # noqa: E402

SEED_DB = "wbench_seed"
BACKLOG_TYPES = ("customer.subscription.updated", "invoice.paid")


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def sandbox(port: int, state_file: str, latency_ms: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "payment.cli", "sandbox", "--port", str(port), "--state-file", state_file]
    command += ["--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "LOG_LEVEL": "WARNING"})
    wait_listening(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def seed(url: str, sandbox_url: str, customers: int) -> list[dict[str, Any]]:
    """Subscriptions paid and renewed in the sandbox, their history applied; returns the backlog's model events."""
    async with running_services(settings_for(url, stripe_api_base=sandbox_url)) as services:
        world = World(services, sandbox_url)
        plan = await world.plan()
        for _ in range(customers):
            await world.subscribe(await world.customer(), plan)
        seen = len(await world.events())
        await world.advance(31)
        history = await world.events()
        await world.apply_all([e for e in history if e["type"] in HANDLED_TYPES])
        return [e for e in history[seen:] if e["type"] in BACKLOG_TYPES]


async def store_backlog(url: str, bodies: list[tuple[dict[str, Any], bytes]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for event, body in bodies:
                await store_and_defer(conn, event, body, task=APPLY_TASK)
    finally:
        await conn.close()


async def wait_for(url: str, sql: str, done: Any, timeout: float, every: float = 0.1) -> Any:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            value = await conn.fetchrow(sql)
            if done(value) or time.monotonic() > deadline:
                return value
            await asyncio.sleep(every)
    finally:
        await conn.close()


_PROGRESS = """
    SELECT count(*) FILTER (WHERE status IN ('handled', 'ignored', 'failed')) AS finished,
           count(*) FILTER (WHERE status = 'failed') AS failed
      FROM stripe_events WHERE stripe_event_id LIKE 'evt_wbench_%'
"""


def one_round(
    side: str,
    root: Path,
    url: str,
    sandbox_url: str,
    bodies: list[tuple[dict[str, Any], bytes]],
    concurrency: int | None,
    timeout: float,
) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "APP_ENV": "test",
        "DATABASE_URL": url,
        "STRIPE_API_BASE": sandbox_url,
        "LOG_LEVEL": "WARNING",
    }
    if concurrency:
        env["WORKER_CONCURRENCY"] = str(concurrency)
    else:
        env.pop("WORKER_CONCURRENCY", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "payment.cli", "worker"], cwd=root, env=env, stdout=subprocess.DEVNULL
    )
    try:
        registered = asyncio.run(
            wait_for(url, "SELECT count(*) AS n FROM procrastinate_workers", lambda r: r["n"] > 0, 60)
        )
        if registered["n"] == 0:
            raise SystemExit(f"{side}: the worker did not start")
        cpu_before = tree_cpu_seconds(worker.pid)
        asyncio.run(store_backlog(url, bodies))
        started = time.monotonic()
        progress = asyncio.run(wait_for(url, _PROGRESS, lambda r: r["finished"] >= len(bodies), timeout))
        seconds = time.monotonic() - started
        cpu_ms = (tree_cpu_seconds(worker.pid) - cpu_before) * 1000 / max(1, progress["finished"])
        load = load_average()
        served = asyncio.run(
            wait_for(
                url,
                "SELECT count(*) FILTER (WHERE details ? 'applied_with_event_row_id') AS along, count(*) AS all "
                "FROM audit_log WHERE action LIKE 'stripe.%' AND details->>'stripe_event_id' LIKE 'evt_wbench_%'",
                lambda r: True,
                1,
            )
        )
    finally:
        stop(worker)
    shown = f"concurrency {concurrency}" if concurrency else "default concurrency"
    return (
        f"{side:6} {progress['finished']:5d}/{len(bodies)} events in {seconds:6.1f} s = "
        f"{progress['finished'] / seconds:6.1f} events/s, {cpu_ms:5.1f} CPU ms/event (worker process), "
        f"{progress['failed']} failed, {served['along']} applied with another event's snapshot, {shown} | {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--customers", type=int, default=50, help="subscriptions; the events are about 2x as many objects"
    )
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    parser.add_argument("--concurrency", type=int, help="WORKER_CONCURRENCY of ours (default: its own default)")
    parser.add_argument("--before-concurrency", type=int, help="WORKER_CONCURRENCY of before (default: its own)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a side may take to drain the backlog")
    args = parser.parse_args()
    roots = {"ours": ROOT}
    if args.before:
        roots["before"] = args.before.resolve()
    concurrency = {"ours": args.concurrency, "before": args.before_concurrency}
    with server() as admin_url, tempfile.TemporaryDirectory(prefix="aquoris-wbench-") as scratch:
        asyncio.run(admin(admin_url, f'CREATE DATABASE "{SEED_DB}"'))
        seed_url = database_url(admin_url, SEED_DB)
        migrate.upgrade(seed_url)
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        state_file = str(Path(scratch) / "sandbox.json")
        process = sandbox(port, state_file, 0)
        try:
            t0 = time.monotonic()
            models = asyncio.run(seed(seed_url, sandbox_url, args.customers))
        finally:
            stop(process)
        objects = len({e["data"]["object"]["id"] for e in models})
        print(
            f"seeded {args.customers} subscriptions in {time.monotonic() - t0:.1f} s; backlog: {args.events} events "
            f"over {objects} Stripe objects ({', '.join(BACKLOG_TYPES)}); Stripe latency {args.latency_ms} ms"
        )
        bodies = []
        for i in range(args.events):
            event = {**models[i % len(models)], "id": f"evt_wbench_{i:06d}"}
            bodies.append((event, json.dumps(event, default=str).encode()))
        process = sandbox(port, state_file, args.latency_ms)
        try:
            for n in range(args.rounds):
                sides = list(roots) if n % 2 == 0 else list(reversed(roots))
                for side in sides:
                    name = f"wbench_{side}_{n}"
                    asyncio.run(admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{SEED_DB}"'))
                    try:
                        line = one_round(
                            side,
                            roots[side],
                            database_url(admin_url, name),
                            sandbox_url,
                            bodies,
                            concurrency[side],
                            args.timeout,
                        )
                    finally:
                        asyncio.run(admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    print(f"round {n + 1}: {line}", flush=True)
        finally:
            stop(process)


if __name__ == "__main__":
    main()
