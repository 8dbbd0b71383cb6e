"""Stripe webhook deliveries accepted per second, driven by wrk: the service beside a bare Starlette + asyncpg
endpoint doing the same work.

    python benchmarks/webhooks.py [--seconds 10] [--connections 32] [--rounds 3] [--web-workers 1 2] [--before PATH]

For each side a fresh migrated database (PostgreSQL embedded in a temporary folder, or TEST_DATABASE_URL's server),
and all the servers up at once, each a process of its own on loopback:

  ours:      `payment serve`: signature check, the event stored once and its Procrastinate job, concurrent
             deliveries batched, as in production (no worker runs: the jobs wait); with `--web-workers 1 2` a side
             per process count (`ours-2p` is `payment serve --workers 2`)
  baseline:  this file's `baseline_app` under uvicorn: HMAC check, JSON parse, then in one transaction the event
             insert (ON CONFLICT DO NOTHING) and the job through Procrastinate's `procrastinate_defer_jobs_v1`
  before:    with `--before PATH`, `payment serve` from another checkout (`git worktree add /tmp/before main`)

Every round posts distinct events (a `customer.subscription.updated` with a real subscription object from
../shared/stripe/fixtures3.json, about 4 KB), signed just before the round with the development webhook secret;
wrk cycles through them, so a round longer than the events prepared repeats some (answered as duplicates).
Printed like benchmarks/sessions_api.py: per round and side req/s, p50/p99, CPU ms per request, load average; then
round trips per request counted by a proxy in front of PostgreSQL, and medians with ratios to the baseline; last,
the events and jobs each side's database holds, so an accepted delivery is seen to be a stored one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, pgserver  # noqa: E402
from benchmarks.sessions_api import fresh_database  # noqa: E402

# ../shared beside the checkout (a worktree one level deeper finds it further up)
FIXTURES = next(
    (
        p / "shared" / "stripe" / "fixtures3.json"
        for p in ROOT.parents
        if (p / "shared" / "stripe" / "fixtures3.json").exists()
    ),
    ROOT.parent / "shared",
)
_DEFER = (
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('default', 'payment:apply_stripe_event', 0, NULL, NULL, "
    "jsonb_build_object('event_row_id', $1::bigint), NULL)::procrastinate_job_to_defer_v1])"
)


# ---------------------------------------------------------------- baseline server (runs in its own process)


def baseline_app() -> Starlette:
    """Verify, store the event, defer its job, one transaction: the floor for this endpoint."""
    dsn = os.environ["BENCH_DSN"]
    secret = os.environ["BENCH_WEBHOOK_SECRET"].encode()
    pool: asyncpg.Pool | None = None

    async def webhook(request: Request) -> JSONResponse:
        assert pool is not None
        payload = await request.body()
        parts = dict(p.split("=", 1) for p in request.headers.get("stripe-signature", "").split(",") if "=" in p)
        expected = hmac.new(secret, parts.get("t", "").encode() + b"." + payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")) or abs(time.time() - int(parts["t"])) > 300:
            return JSONResponse({"error": "invalid_signature"}, status_code=400)
        event = json.loads(payload)
        async with pool.acquire() as conn, conn.transaction():
            row_id = await conn.fetchval(
                "INSERT INTO stripe_events (stripe_event_id, type, object_id, payload, stripe_created_at, "
                "received_at, received_via, status) VALUES ($1, $2, $3, $4::text::jsonb, to_timestamp($5), now(), "
                "'webhook', 'pending') ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id",
                event["id"],
                event["type"],
                event["data"]["object"]["id"],
                payload.decode(),
                event["created"],
            )
            if row_id is not None:
                await conn.execute(_DEFER, row_id)
        return JSONResponse({"received": True, "duplicate": row_id is None})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        yield
        await pool.close()

    return Starlette(routes=[Route("/api/v1/webhooks/stripe", webhook, methods=["POST"])], lifespan=lifespan)


# ---------------------------------------------------------------- harness

_LUA = """
local signatures, bodies = {}, {}
for line in io.lines("%(file)s") do
  local tab = line:find("\\t", 1, true)
  signatures[#signatures + 1] = line:sub(1, tab - 1)
  bodies[#bodies + 1] = line:sub(tab + 1)
end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "/api/v1/webhooks/stripe",
                    {["Content-Type"] = "application/json", ["Stripe-Signature"] = signatures[i]}, bodies[i])
end
"""


def subscription_object() -> dict[str, Any]:
    resources = json.loads(FIXTURES.read_text())["resources"]
    obj: dict[str, Any] = resources["subscription"]
    return obj


def signed_deliveries(folder: Path, side: str, round_no: int, count: int, secret: str) -> Path:
    """A wrk script posting `count` distinct events signed now."""
    subscription = subscription_object()
    now = int(time.time())
    lines = []
    for i in range(count):
        event = {
            "id": f"evt_bench_{side}_{round_no}_{i}_{now}",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": now,
            "livemode": False,
            "pending_webhooks": 1,
            "type": "customer.subscription.updated",
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {**subscription, "id": f"sub_bench_{i % 500}"}},
        }
        body = json.dumps(event, separators=(",", ":"))
        signature = hmac.new(secret.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
        lines.append(f"t={now},v1={signature}\t{body}")
    data = folder / f"{side}-{round_no}.txt"
    data.write_text("\n".join(lines) + "\n")
    script = folder / f"{side}-{round_no}.lua"
    script.write_text(_LUA % {"file": data})
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20000, help="distinct events prepared per round and side")
    parser.add_argument(
        "--web-workers", type=int, nargs="+", default=[1], help="`payment serve --workers`: one side of ours per value"
    )
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    args = parser.parse_args()
    loadgen.require_wrk()
    from payment.config import DEV_STRIPE_WEBHOOK_SECRET
    from payment.dburl import libpq_url
    from payment.embedded_pg import free_port

    processes = {("ours" if n == 1 else f"ours-{n}p"): n for n in args.web_workers}
    roots = {**dict.fromkeys(processes, ROOT), "baseline": ROOT}
    if args.before:
        roots["before"] = args.before.resolve()

    def command(name: str, port: int) -> list[str]:
        if name == "baseline":
            return [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "benchmarks.webhooks:baseline_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        extra = ["--workers", str(processes[name])] if processes.get(name, 1) > 1 else []
        return [
            sys.executable,
            "-c",
            "from payment.cli import run; run()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ]

    def environment(name: str, url: str) -> dict[str, str]:
        if name == "baseline":
            return {
                "BENCH_DSN": libpq_url(url),
                "BENCH_WEBHOOK_SECRET": DEV_STRIPE_WEBHOOK_SECRET,
                "PYTHONPATH": str(ROOT),
            }
        return {
            "APP_ENV": "development",
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "20",
            "PYTHONPATH": str(roots[name]),
        }

    with pgserver.server() as server_url, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        sides = []
        for name, root in roots.items():
            url, _key = fresh_database(server_url, f"bench_webhooks_{name}", root)
            sides.append(
                loadgen.Side(
                    name,
                    root,
                    lambda port, name=name: command(name, port),  # type: ignore[misc]
                    lambda url, name=name: environment(name, url),  # type: ignore[misc]
                    url,
                    lambda round_no, name=name: signed_deliveries(  # type: ignore[misc]
                        folder, name, round_no, args.events if round_no > 0 else 3000, DEV_STRIPE_WEBHOOK_SECRET
                    ),
                )
            )
        loadgen.compare(
            sides,
            title="POST /api/v1/webhooks/stripe",
            rounds=args.rounds,
            seconds=args.seconds,
            connections=args.connections,
            baseline="baseline",
            free_port=free_port,
        )
        print("\nstored (every round's events are distinct; wrk repeats them only when a round outruns them):")
        for side in sides:
            events, jobs = asyncio.run(stored_counts(side.database_url))
            print(f"  {side.name:8s} {events:8d} events  {jobs:8d} apply jobs")


async def stored_counts(url: str) -> tuple[int, int]:
    from payment.dburl import libpq_url

    conn = await asyncpg.connect(libpq_url(url))
    try:
        events = await conn.fetchval("SELECT count(*) FROM stripe_events")
        jobs = await conn.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'payment:apply_stripe_event'"
        )
    finally:
        await conn.close()
    return int(events), int(jobs)


if __name__ == "__main__":
    main()
