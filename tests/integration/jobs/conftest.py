"""Real Procrastinate workers for job tests: in-process on the test loop, or `payment worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from payment.bootstrap import build_services
from payment.config import Settings
from payment.jobs.worker import run_worker
from payment.runtime import Services

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
async def job_queue(services: Services) -> AsyncIterator[None]:
    """The module's job app open for deferring, as the web app's lifespan opens it."""
    async with services.jobs.open_async():
        yield


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, *, concurrency: int = 4) -> AsyncIterator[Services]:
    """A worker on this loop with its own Services (its job app's pool is closed when it stops)."""
    services = build_services(settings)
    task = asyncio.create_task(run_worker(services, concurrency=concurrency))
    try:
        yield services
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=30)
        await services.db.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


class WorkerProcess:
    """`payment worker` as operators run it, on this module's database and the sandbox."""

    def __init__(self, settings: Settings, *, concurrency: int | None = 4) -> None:
        """`concurrency` None: the worker's own default (128 slots over 4 fetch loops), as operators run it."""
        assert settings.database_url is not None and settings.stripe_api_base is not None
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "WORKER_CONCURRENCY"},
            "APP_ENV": "test",
            "DATABASE_URL": settings.database_url,
            "STRIPE_API_BASE": settings.stripe_api_base,
            "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
            "LOG_LEVEL": "WARNING",
        }
        if concurrency is not None:
            self.env["WORKER_CONCURRENCY"] = str(concurrency)
        self.process: subprocess.Popen[bytes] | None = None
        self.final_output: str | None = None
        # a file, not a pipe: a pipe nobody reads while the worker runs fills up after 64 KiB of log lines, and the
        # worker then blocks on its next write (seen in the full suite, where a worker logs more than alone)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payment.cli", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        """Kill the worker if it still runs, keep what it printed and close its log file (none left to the GC)."""
        if self.final_output is not None:
            return
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.final_output = self.output()
        self.log.close()
