"""Start the service's processes for tests and wait for them, with their output kept for failure messages."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a deployed process, pointed at the test database and never at the real Stripe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "STRIPE_", "DATABASE_URL"))}
    return {
        **env,
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Process:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.final_output = ""
        self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        if self.log.closed:
            return self.final_output
        self.log.seek(0)
        return self.log.read()

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"process did not print {text!r}:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def wait_for_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self.final_output = self.output()
        self.log.close()


@contextmanager
def started(argv: list[str], env: dict[str, str]) -> Iterator[Process]:
    process = Process(argv, env)
    try:
        yield process
    finally:
        process.stop()


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]
