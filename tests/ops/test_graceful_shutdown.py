"""SIGTERM as `docker compose stop` sends it: requests in flight and running jobs finish, all within the 30 s grace."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import procrastinate
import pytest

from payment.dburl import libpq_url
from payment.embedded_pg import free_port
from payment.serving import GRACE_SECONDS
from tests.ops.processes import process_env, python_module, started

pytestmark = pytest.mark.slow

# A request sent this close to SIGTERM may still sit in the listener's backlog, or be accepted with its bytes not yet
# read, when the server closes: it ends unanswered (the client may retry it), never with an error response.
RACE_SECONDS = 1.0
UNANSWERED = {"ReadError", "RemoteProtocolError"}


@dataclass
class Load:
    """Clients sending requests in a loop, each on a new connection, recording when each started and how it ended."""

    url: str
    threads: int = 4
    results: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with httpx.Client(timeout=35, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    outcome = str(client.get(self.url).status_code)
                except httpx.ConnectError:
                    outcome = "refused"
                    time.sleep(0.01)
                except httpx.TransportError as exc:
                    outcome = type(exc).__name__
                self.results.append((began, outcome))

    def answered(self) -> int:
        return sum(1 for _, outcome in self.results if outcome == "200")

    def __enter__(self) -> Load:
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(40)


def test_payment_serve_under_load_stops_on_sigterm_without_failing_a_request(database_url: str) -> None:
    port = free_port()
    env = process_env(database_url, PORT=str(port), HOST="127.0.0.1")
    with started(python_module("payment.cli", "serve"), env) as server:
        server.wait_for_http(f"http://127.0.0.1:{port}/api/health")
        with Load(f"http://127.0.0.1:{port}/api/health") as load:
            deadline = time.monotonic() + 30
            while load.answered() < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(RACE_SECONDS + 0.5)
            sent_at = time.monotonic()
            server.popen.send_signal(signal.SIGTERM)
            code = server.popen.wait(GRACE_SECONDS)
            exited_after = time.monotonic() - sent_at
            time.sleep(0.3)
        served = server.output().count('"GET /api/health HTTP/1.1" 200')

    assert code in (0, 143), server.output()[-2000:]
    assert exited_after < GRACE_SECONDS
    outcomes = [outcome for _, outcome in load.results]
    settled = [outcome for began, outcome in load.results if began < sent_at - RACE_SECONDS]
    assert len(settled) >= 10, f"the load never got going: {load.results[:10]}"
    assert set(settled) == {"200"}, f"requests sent before SIGTERM failed: {sorted(set(settled))}"
    # No request ever got an error answer, and every request the server handled reached its client. Requests
    # racing the listener's close are refused, or closed unanswered before the app saw them (safe to retry).
    assert set(outcomes) <= {"200", "refused", *UNANSWERED}, sorted(set(outcomes))
    assert outcomes.count("200") == served - 1  # wait_for_http's request was the first one served
    assert "refused" in outcomes  # it did stop accepting


def test_a_request_in_flight_at_sigterm_completes_and_new_connections_are_refused(database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(python_module("tests.ops.service_process", "web", str(port)), process_env(database_url)) as server:
        server.wait_for_output("READY")
        slow: dict[str, object] = {}

        def call_slow() -> None:
            try:
                response = httpx.get(f"{base}/_ops/slow?seconds=6", timeout=35)
                slow["answer"] = (response.status_code, response.text)
            except httpx.TransportError as exc:
                slow["answer"] = repr(exc)

        caller = threading.Thread(target=call_slow)
        caller.start()
        server.wait_for_output("slow request started")
        sent_at = time.monotonic()
        server.popen.send_signal(signal.SIGTERM)
        refused_while_in_flight = False
        while caller.is_alive() and not refused_while_in_flight:
            try:
                httpx.get(f"{base}/api/health", timeout=5)  # still served until the listener closes
            except httpx.ConnectError:
                refused_while_in_flight = caller.is_alive()
            except httpx.TransportError:
                pass  # accepted just as the listener closed, then dropped unanswered
            time.sleep(0.05)
        code = server.popen.wait(GRACE_SECONDS)
        exited_after = time.monotonic() - sent_at
        caller.join(10)

    assert refused_while_in_flight, "new connections were still accepted while the slow request ran"
    assert slow["answer"] == (200, "slow done")
    assert code == 0, server.output()[-2000:]
    assert 4.0 < exited_after < GRACE_SECONDS  # it waited for the request, not for the whole grace


async def _job_status(database_url: str, job_id: int) -> str:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        return str(await conn.fetchval("SELECT status FROM procrastinate_jobs WHERE id = $1", job_id))
    finally:
        await conn.close()


async def _wait_status(database_url: str, job_id: int, status: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while (current := await _job_status(database_url, job_id)) != status and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return current


async def test_worker_finishes_its_running_job_on_sigterm_and_takes_no_new_one(
    database_url: str, tmp_path: Path
) -> None:
    jobs = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=libpq_url(database_url)))
    slow_task = jobs.configure_task("ops_test.slow", queue="ops_test")
    marker = tmp_path / "slow-job-done"
    with started(python_module("tests.ops.service_process", "worker"), process_env(database_url)) as worker:
        await asyncio.to_thread(worker.wait_for_output, "READY")
        async with jobs.open_async():
            running = await slow_task.defer_async(seconds=4, marker=str(marker))
            assert await _wait_status(database_url, running, "doing") == "doing", worker.output()[-2000:]
            sent_at = time.monotonic()
            worker.popen.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait_for_output, "Waiting for job to finish")  # no longer fetching
            waiting = await slow_task.defer_async(seconds=0.1, marker=str(tmp_path / "never"))
            code = await asyncio.to_thread(worker.popen.wait, GRACE_SECONDS)
            exited_after = time.monotonic() - sent_at

    assert code == 0, worker.output()[-2000:]
    assert marker.read_text() == "done"  # the job ran to its end
    # succeeded, and then deleted (the worker keeps no successful jobs) rather than aborted or failed
    assert await _job_status(database_url, running) in ("succeeded", "None")
    assert await _job_status(database_url, waiting) == "todo"  # left for the next worker
    assert 3.0 < exited_after < GRACE_SECONDS


def test_payment_worker_exits_promptly_on_sigterm_when_idle(database_url: str) -> None:
    with started(python_module("payment.cli", "worker"), process_env(database_url)) as worker:
        worker.wait_for_output("Starting worker")
        sent_at = time.monotonic()
        worker.popen.send_signal(signal.SIGTERM)
        code = worker.popen.wait(GRACE_SECONDS)

    assert code == 0, worker.output()[-2000:]
    assert time.monotonic() - sent_at < 10
