"""Scale-out: two `payment serve` and two `payment worker` processes on one PostgreSQL, directly or with PgBouncer
(transaction pooling) in front of the web processes while the workers connect directly (they LISTEN).

Webhook, API and admin traffic goes through both web processes; one worker is SIGKILLed mid-batch. Every event is
applied exactly once, each periodic tick is deferred once, the sign-in limit holds across both web processes and
no request is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from payment import migrate
from payment.apps import service as apps
from payment.config import DEV_SECRET_KEY, DEV_STRIPE_WEBHOOK_SECRET
from payment.embedded_pg import NOBODY, EmbeddedPostgres, free_port
from payment.models import BillingSession, StripeEvent
from tests.integration.admin.conftest import sign_in
from tests.integration.jobs.conftest import WorkerProcess, eventually
from tests.integration.jobs.test_faults import _counts, _history
from tests.ops.processes import Process, process_env, python_module, started
from tests.support.app import running_services
from tests.support.db import settings_for
from tests.support.stripe import World, sign

pytestmark = pytest.mark.slow


def _pgbouncer_binary() -> str:
    path = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if path is None:
        message = "PgBouncer is not installed (apt-get install -y pgbouncer)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def pgbouncer(server: EmbeddedPostgres) -> Iterator[str]:
    """PgBouncer in transaction pooling in front of `payment` on the server; yields its DATABASE_URL."""
    binary = _pgbouncer_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aquoris-pgbouncer-") as folder:
        os.chmod(folder, 0o755)
        config = Path(folder) / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"payment = host=127.0.0.1 port={server.port} dbname=payment user=postgres password={server.password}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,application_name\n"
        )
        config.chmod(0o644)

        def as_nobody() -> None:  # PgBouncer refuses to run as root
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setgroups([])
                os.setuid(NOBODY)

        process = subprocess.Popen(
            [binary, str(config)], preexec_fn=as_nobody, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            _wait_port(port, process)
            yield f"postgresql://postgres@127.0.0.1:{port}/payment"
        finally:
            process.terminate()
            process.wait(10)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"PgBouncer does not listen on {port}"
            time.sleep(0.05)


def _web(env: dict[str, str], stack: ExitStack, *extra: str) -> str:
    port = free_port()
    process: Process = stack.enter_context(
        started(python_module("payment.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *extra), env)
    )

    # SIGTERM first (run before `started` kills it): uvicorn's supervisor stops its worker processes with it
    def stop() -> None:
        process.popen.terminate()
        process.popen.wait(40)

    stack.callback(stop)
    url = f"http://127.0.0.1:{port}"
    process.wait_for_http(f"{url}/api/health", timeout=60)
    return url


@pytest.mark.parametrize("topology", ["direct", "pgbouncer"])
async def test_two_web_and_two_worker_processes_share_one_database(
    topology: str, own_postgres: EmbeddedPostgres, sandbox: str
) -> None:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    settings = settings_for(url, stripe_api_base=sandbox)
    async with running_services(settings) as own:
        history = await _history(World(own, sandbox), customers=6)
        async with own.db.transaction() as session:
            issued = await apps.create_app(
                session,
                slug="vega",
                name="Vega",
                return_url="https://vega.example/",
                secret_key=DEV_SECRET_KEY,
                actor="test",
            )
    bodies = [json.dumps(event, default=str).encode() for event in history]

    with ExitStack() as stack:
        web_url = stack.enter_context(pgbouncer(own_postgres)) if topology == "pgbouncer" else url
        env = process_env(
            web_url,
            STRIPE_API_BASE=sandbox,
            STRIPE_WEBHOOK_SECRET=DEV_STRIPE_WEBHOOK_SECRET,
            SECRET_KEY=DEV_SECRET_KEY,
            LOGIN_RATE_LIMIT="5",
            LOG_LEVEL="WARNING",
            DATABASE_POOLER="pgbouncer" if topology == "pgbouncer" else "none",
        )
        webs = [_web(env, stack), _web(env, stack, "--workers", "2")]  # the second: uvicorn's supervisor
        workers = [WorkerProcess(settings, concurrency=2), WorkerProcess(settings, concurrency=2)]
        for worker in workers:
            stack.callback(worker.stop)

        async with httpx.AsyncClient(timeout=30) as http:

            async def deliver(index: int, body: bytes) -> int:
                response = await http.post(
                    f"{webs[index % 2]}/api/v1/webhooks/stripe",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(body, DEV_STRIPE_WEBHOOK_SECRET),
                    },
                )
                return response.status_code

            async def open_session(index: int) -> int:
                response = await http.post(
                    f"{webs[index % 2]}/api/v1/sessions",
                    json={"externalUserId": f"scale-user-{index % 7}", "appSlug": "vega"},
                    headers={"Authorization": f"Bearer {issued.api_key}"},
                )
                return response.status_code

            # every event twice, once through each web process, at once; API traffic beside it
            answers = await asyncio.gather(
                *(deliver(i + copy, body) for i, body in enumerate(bodies) for copy in (0, 1)),
                *(open_session(i) for i in range(40)),
            )
            assert answers == [200] * (2 * len(bodies)) + [201] * 40

            for worker in workers:
                worker.start()
            row_ids = await _stored_ids(own_postgres, [e["id"] for e in history])
            async with running_services(settings) as services:
                await eventually(lambda: _some_handled(services, row_ids), timeout=60, every=0.05)
                workers[0].signal(signal.SIGKILL)
                workers[0].wait(10)
                handled, _ = await _counts(services, row_ids)
                assert handled < len(row_ids), "the kill should land in the middle of the batch"

                # the sign-in limit is one count across both web processes
                clients = [httpx.AsyncClient(base_url=web, timeout=30) for web in webs]
                try:
                    outcomes = [
                        (await sign_in(clients[i % 2], "ops@example.com", f"wrong-{i}")).status_code for i in range(5)
                    ]
                    assert outcomes == [400] * 5
                    assert [(await sign_in(c, "ops@example.com", "again")).status_code for c in clients] == [429] * 2
                finally:
                    for client in clients:
                        await client.aclose()

                async def all_applied() -> bool:
                    return (await _counts(services, row_ids))[0] == len(row_ids)

                await eventually(all_applied, timeout=120, every=0.5)
                assert await _counts(services, row_ids) == (len(row_ids), len(row_ids))  # exactly once each
                async with services.db.session() as session:
                    stored = (
                        await session.execute(
                            select(StripeEvent.stripe_event_id, func.count()).group_by(StripeEvent.stripe_event_id)
                        )
                    ).all()
                    sessions = await session.scalar(select(func.count()).select_from(BillingSession))
                    ticks = (
                        await session.execute(
                            text(
                                "SELECT task_name, defer_timestamp, count(*) FROM procrastinate_periodic_defers "
                                "GROUP BY task_name, defer_timestamp"
                            )
                        )
                    ).all()
                assert {event_id: n for event_id, n in stored} == dict.fromkeys((e["id"] for e in history), 1)
                assert sessions == 40
                # both workers ran the periodic scheduler; each tick was deferred by one of them only
                assert any(name == "payment:sweep_stripe_events" for name, _, _ in ticks)
                assert all(n == 1 for _, _, n in ticks)


async def _stored_ids(server: EmbeddedPostgres, event_ids: list[str]) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(server.url("payment"))
    try:
        return [
            int(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM stripe_events WHERE stripe_event_id = ANY($1::text[]) AND status = 'pending'", event_ids
            )
        ]
    finally:
        await conn.close()


async def _some_handled(services: object, row_ids: list[int]) -> bool:
    return (await _counts(services, row_ids))[0] >= 3  # type: ignore[arg-type]
