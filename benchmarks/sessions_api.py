"""POST /api/v1/sessions driven by wrk: the service beside a bare Starlette + asyncpg endpoint running the same SQL.

    python benchmarks/sessions_api.py [--seconds 10] [--connections 32] [--users 2000] [--rounds 3]
                                      [--web-workers 1] [--before PATH]

Starts PostgreSQL (embedded in a temporary folder, or TEST_DATABASE_URL's server), then for each side a fresh
migrated database with the app `vega`, and all the servers at once, each a process of its own on loopback:

  ours:      `payment serve` (the real app: key check, JSON and size checks, validation, customer upsert, billing
             session + audit rows), with `--web-workers` processes
  baseline:  this file's `baseline_app` under uvicorn: a bare Starlette endpoint running the same SQL statements
             through an asyncpg pool of 20 (ours gets DB_POOL_SIZE=20), in one transaction
  before:    with `--before PATH`, `payment serve` from another checkout (e.g. `git worktree add /tmp/before main`),
             to measure a change against the code it replaces in the same run

The rounds alternate between the sides (the order rotates each round) so a busy machine hurts them alike. Each
round is `wrk -t1 -c<connections>` for `--seconds`, users drawn at random from `--users` external ids. Printed per
round and side: requests per second, p50/p99, CPU milliseconds per request of the server process(es), and the load
average at that moment. Then each side is started once more behind a counting proxy and driven lightly for a
couple of seconds to count its round trips to PostgreSQL per request. The summary gives the medians and each
side's ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, pgserver  # noqa: E402

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
            app = await conn.fetchrow(
                "SELECT id, slug, is_active FROM apps WHERE api_key_hash = $1", hashlib.sha256(key.encode()).digest()
            )
            if app is None or app["slug"] != slug:
                return JSONResponse({"code": "invalid_api_key"}, status_code=401)
            actor = f"app:{slug}"
            customer = await conn.fetchval(
                "SELECT id FROM customers WHERE external_user_id = $1 FOR UPDATE", external_id
            )
            if customer is None:
                inserted = await conn.fetchval(
                    "INSERT INTO customers (external_user_id, created_at, updated_at) VALUES ($1, now(), now()) "
                    "ON CONFLICT (external_user_id) DO NOTHING RETURNING id",
                    external_id,
                )
                customer = await conn.fetchval(
                    "SELECT id FROM customers WHERE external_user_id = $1 FOR UPDATE", external_id
                )
                if inserted is not None:
                    await conn.execute(
                        "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                        "VALUES ($1, 'customer.created', 'customer', $2, $3::jsonb)",
                        actor,
                        str(customer),
                        json.dumps({"external_user_id": external_id}),
                    )
            token = secrets.token_urlsafe(32)
            session_id = uuid.uuid4()
            expires = datetime.now(UTC) + TTL
            await conn.execute(
                "INSERT INTO billing_sessions (id, token_hash, app_id, customer_id, locale, expires_at) "
                "VALUES ($1, $2, $3, $4, NULL, $5)",
                session_id,
                hashlib.sha256(token.encode()).digest(),
                app["id"],
                customer,
                expires,
            )
            await conn.execute(
                "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                "VALUES ($1, 'billing_session.created', 'billing_session', $2, $3::jsonb)",
                actor,
                str(session_id),
                json.dumps({"app": slug, "customer_id": customer, "expires_at": expires.isoformat()}),
            )
        return JSONResponse(
            {
                "id": str(session_id),
                "url": f"{base_url}/billing/{token}",
                "expiresAt": expires.isoformat().replace("+00:00", "Z"),
            },
            status_code=201,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        yield
        await pool.close()

    return Starlette(routes=[Route("/api/v1/sessions", sessions, methods=["POST"])], lifespan=lifespan)


# ---------------------------------------------------------------- harness

# Run with the side's own code (PYTHONPATH), so `--before` migrates with its own migrations.
_PREPARE = """
import asyncio, sys
from payment import migrate
from payment.apps import service as apps
from payment.config import DEV_SECRET_KEY
from payment.db import Database

try:
    from payment.audit.chain import chain_key
    CHAIN = {"audit_key": chain_key(DEV_SECRET_KEY)}
except ImportError:  # a checkout from before the audit chain (--before)
    CHAIN = {}

async def main(url):
    await migrate.upgrade_async(url)
    db = Database(url, null_pool=True, **CHAIN)
    async with db.transaction() as session:
        issued = await apps.create_app(session, slug="vega", name="Vega", return_url="https://vega.example.com/",
                                       secret_key=DEV_SECRET_KEY, actor="bench")
    await db.dispose()
    print(issued.api_key)

asyncio.run(main(sys.argv[1]))
"""

_LUA = """
math.randomseed(7)
local headers = {["Authorization"] = "Bearer %(key)s", ["Content-Type"] = "application/json"}
request = function()
  local body = '{"externalUserId":"bench-user-' .. math.random(0, %(users)d - 1) .. '","appSlug":"vega"}'
  return wrk.format("POST", "/api/v1/sessions", headers, body)
end
"""


def fresh_database(server_url: str, name: str, root: Path) -> tuple[str, str]:
    """A new migrated database with the app `vega`, made by the code in `root`: (URL, API key)."""
    from payment.dburl import with_database

    async def recreate() -> None:
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()

    asyncio.run(recreate())
    url = with_database(server_url, name)
    key = (
        subprocess.run(
            [sys.executable, "-c", _PREPARE, url],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return url, key


def command(side: str, root: Path, port: int, web_workers: int) -> list[str]:
    if side == "baseline":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.sessions_api:baseline_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    extra = ["--workers", str(web_workers)] if web_workers > 1 else []
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


def environment(side: str, root: Path, url: str) -> dict[str, str]:
    from payment.dburl import libpq_url

    if side == "baseline":
        return {"BENCH_DSN": libpq_url(url), "PYTHONPATH": str(root)}
    return {
        "APP_ENV": "development",
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "20",
        "PYTHONPATH": str(root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=1, help="`payment serve --workers` for ours")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    args = parser.parse_args()
    loadgen.require_wrk()
    from payment.embedded_pg import free_port

    roots = {"ours": ROOT, "baseline": ROOT}
    if args.before:
        roots["before"] = args.before.resolve()
    with pgserver.server() as server_url, tempfile.TemporaryDirectory() as scratch:
        sides = []
        for name, root in roots.items():
            url, key = fresh_database(server_url, f"bench_sessions_{name}", root)
            script = Path(scratch) / f"{name}.lua"
            script.write_text(_LUA % {"key": key, "users": args.users})
            sides.append(
                loadgen.Side(
                    name,
                    root,
                    lambda port, name=name, root=root: command(name, root, port, args.web_workers),  # type: ignore[misc]
                    lambda url, name=name, root=root: environment(name, root, url),  # type: ignore[misc]
                    url,
                    lambda _round, script=script: script,  # type: ignore[misc]
                )
            )
        loadgen.compare(
            sides,
            title="POST /api/v1/sessions",
            rounds=args.rounds,
            seconds=args.seconds,
            connections=args.connections,
            baseline="baseline",
            free_port=free_port,
        )


if __name__ == "__main__":
    main()
