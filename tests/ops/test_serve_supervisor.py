"""`payment serve --workers N`: the worker processes do not outlive their supervisor, even a SIGKILLed one."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from payment import migrate
from payment.embedded_pg import EmbeddedPostgres, free_port
from tests.ops.processes import process_env, python_module, started


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_the_workers_stop_when_the_supervisor_is_killed(own_postgres: EmbeddedPostgres) -> None:
    url = own_postgres.url("payment")
    await migrate.upgrade_async(url)
    port = free_port()
    argv = python_module("payment.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
    with started(argv, process_env(url)) as supervisor:
        supervisor.wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=60)
        workers = [pid for pid in _children(supervisor.popen.pid) if _alive(pid)]
        # uvicorn's spawn start method adds a resource tracker beside the two servers
        assert len(workers) >= 2, supervisor.output()[-2000:]
        supervisor.popen.send_signal(signal.SIGKILL)
        supervisor.popen.wait(10)
        try:
            deadline = time.monotonic() + 40
            while any(_alive(pid) for pid in workers):
                assert time.monotonic() < deadline, f"orphaned workers still run: {[p for p in workers if _alive(p)]}"
                await asyncio.sleep(0.1)
        finally:
            for pid in workers:  # the ones this test started, should the assertion fail
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
