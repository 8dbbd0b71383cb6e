"""POST /api/v1/sessions under load, beside a bare Starlette + asyncpg endpoint running the same SQL.

    python benchmarks/sessions_api.py [--seconds 10] [--concurrency 32] [--users 2000] [--rounds 2]

Starts PostgreSQL (embedded in a temporary folder, or a new database on TEST_DATABASE_URL's server), migrates it,
creates the app `vega`, then serves, one after the other, each on its own loopback port in a process of its own
under uvicorn (one worker, no access log):

  service:   the real app (`payment.app:create_app`): key check, JSON and size checks, validation, customer upsert,
             billing session + audit rows, through SQLAlchemy's async ORM
  baseline:  this file's `baseline_app`: a bare Starlette endpoint running the same SQL statements through an
             asyncpg pool (key lookup; customer select FOR UPDATE, insert + audit when new; session insert; audit)

The load comes from this process: `--concurrency` requests in flight over keep-alive HTTP/1.1 connections for
`--seconds` after a 2-second warm-up, users drawn at random from `--users` external ids (new ones at first, then
mostly returning). Prints requests per second and p50/p99 latency per round and the median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE = "aquoris_sessions_bench"
TTL = timedelta(hours=1)


# ---------------------------------------------------------------- baseline server (runs in its own process)

def baseline_app() -> Starlette:
    """The same SQL as the service's happy path, with nothing else: the floor for this endpoint."""
    dsn = os.environ["BENCH_DSN"]
    base_url = os.environ.get("BENCH_BASE_URL", "http://127.0.0.1")
    pool: asyncpg.Pool | None = None

    async def sessions(request: Request) -> JSONResponse:
        assert pool is not None
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.loads(await request.body())
        external_id, slug = body["externalUserId"], body["appSlug"]
        async with pool.acquire() as conn, conn.transaction():
            app = await conn.fetchrow("SELECT id, slug, is_active FROM apps WHERE api_key_hash = $1",
                                      hashlib.sha256(key.encode()).digest())
            if app is None or app["slug"] != slug:
                return JSONResponse({"code": "invalid_api_key"}, status_code=401)
            actor = f"app:{slug}"
            customer = await conn.fetchval(
                "SELECT id FROM customers WHERE external_user_id = $1 FOR UPDATE", external_id)
            if customer is None:
                inserted = await conn.fetchval(
                    "INSERT INTO customers (external_user_id, created_at, updated_at) VALUES ($1, now(), now()) "
                    "ON CONFLICT (external_user_id) DO NOTHING RETURNING id", external_id)
                customer = await conn.fetchval(
                    "SELECT id FROM customers WHERE external_user_id = $1 FOR UPDATE", external_id)
                if inserted is not None:
                    await conn.execute(
                        "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                        "VALUES ($1, 'customer.created', 'customer', $2, $3::jsonb)",
                        actor, str(customer), json.dumps({"external_user_id": external_id}))
            token = secrets.token_urlsafe(32)
            session_id = uuid.uuid4()
            expires = datetime.now(UTC) + TTL
            await conn.execute(
                "INSERT INTO billing_sessions (id, token_hash, app_id, customer_id, locale, expires_at) "
                "VALUES ($1, $2, $3, $4, NULL, $5)",
                session_id, hashlib.sha256(token.encode()).digest(), app["id"], customer, expires)
            await conn.execute(
                "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                "VALUES ($1, 'billing_session.created', 'billing_session', $2, $3::jsonb)",
                actor, str(session_id), json.dumps({"app": slug, "customer_id": customer,
                                                    "expires_at": expires.isoformat()}))
        return JSONResponse({"id": str(session_id), "url": f"{base_url}/billing/{token}",
                             "expiresAt": expires.isoformat().replace("+00:00", "Z")}, status_code=201)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        yield
        await pool.close()

    return Starlette(routes=[Route("/api/v1/sessions", sessions, methods=["POST"])], lifespan=lifespan)


# ---------------------------------------------------------------- harness

@contextmanager
def postgres() -> Iterator[str]:
    """URL of a server's `postgres` database: TEST_DATABASE_URL, or an embedded one in a temporary folder."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from payment.embedded_pg import EmbeddedPostgres

    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="aquoris-bench-", dir=shm) as folder:
        pg = EmbeddedPostgres(folder)
        pg.start()
        try:
            yield pg.url("postgres")
        finally:
            pg.stop()


async def prepare(server_url: str) -> tuple[str, str]:
    """A fresh migrated database with the app `vega`: (database URL, API key)."""
    from payment import migrate
    from payment.apps import service as apps
    from payment.audit.chain import chain_key
    from payment.config import DEV_SECRET_KEY
    from payment.db import Database
    from payment.dburl import libpq_url, with_database

    admin = await asyncpg.connect(libpq_url(server_url))
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    url = with_database(server_url, DATABASE)
    await migrate.upgrade_async(url)
    db = Database(url, null_pool=True, audit_key=chain_key(DEV_SECRET_KEY))
    async with db.transaction() as session:
        issued = await apps.create_app(session, slug="vega", name="Vega", return_url="https://vega.example.com/",
                                       secret_key=DEV_SECRET_KEY, actor="bench")
    await db.dispose()
    return url, issued.api_key


@contextmanager
def serve(target: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    command = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


async def load(url: str, key: str, *, seconds: float, concurrency: int, users: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        async def worker(stop_at: float, record: bool) -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                body = json.dumps({"externalUserId": f"bench-user-{rng.randrange(users)}", "appSlug": "vega"})
                started = time.perf_counter()
                try:
                    response = await client.post("/api/v1/sessions", content=body)
                except httpx.TransportError:  # counted, as a client would see it; the next request reconnects
                    errors += record
                    continue
                elapsed = time.perf_counter() - started
                if record:
                    if response.status_code == 201:
                        latencies.append(elapsed)
                    else:
                        errors += 1

        warm = time.monotonic() + 2
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        started = time.monotonic()
        await asyncio.gather(*(worker(started + seconds, True) for _ in range(concurrency)))
        wall = time.monotonic() - started
    ordered = sorted(latencies)
    return {"rps": len(ordered) / wall, "p50": ordered[len(ordered) // 2] * 1000,
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, "errors": errors,
            "requests": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from payment.dburl import libpq_url
    from payment.embedded_pg import free_port

    with postgres() as server_url:
        url, key = asyncio.run(prepare(server_url))
        targets = {
            "service": (["--factory", "payment.app:create_app"],
                        {"APP_ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING",
                         "DB_POOL_SIZE": "10"}),
            "baseline": (["--factory", "benchmarks.sessions_api:baseline_app"], {"BENCH_DSN": libpq_url(url)}),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for round_no in range(1, args.rounds + 1):
            for name, (target, env) in targets.items():
                with serve(target, free_port(), env) as base:
                    figures = asyncio.run(load(base, key, seconds=args.seconds, concurrency=args.concurrency,
                                               users=args.users))
                results[name].append(figures)
                print(f"round {round_no} {name:9s} {figures['rps']:8.1f} req/s  p50 {figures['p50']:6.1f} ms  "
                      f"p99 {figures['p99']:6.1f} ms  ({int(figures['requests'])} requests, "
                      f"{int(figures['errors'])} errors)", flush=True)
        print(f"\nPOST /api/v1/sessions, {args.concurrency} in flight, {args.seconds:.0f} s per round, "
              f"median of {args.rounds} rounds (cores: {os.cpu_count()}):")
        for name, rounds in results.items():
            print(f"  {name:9s} {statistics.median(r['rps'] for r in rounds):8.1f} req/s  "
                  f"p50 {statistics.median(r['p50'] for r in rounds):6.1f} ms  "
                  f"p99 {statistics.median(r['p99'] for r in rounds):6.1f} ms")


if __name__ == "__main__":
    main()
