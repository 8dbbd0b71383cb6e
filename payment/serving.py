"""Run uvicorn servers and a worker in one event loop, with one graceful shutdown for all of them.

SIGTERM/SIGINT: the servers stop accepting, finish in-flight requests (cut off after the grace), the worker
finishes its running jobs, then the database pool is closed. Everything within GRACE_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
from uvicorn.supervisors import Multiprocess

from payment.http import redact_path
from payment.slow_clients import REQUEST_READ_SECONDS, DeadlineProtocol

T = TypeVar("T")

log = logging.getLogger(__name__)

GRACE_SECONDS = 30.0
WORKER_HEALTHCHECK_SECONDS = 30


class RedactedAccessLog(logging.Filter):
    """uvicorn's access line shows `/billing/<redacted>/...`: a billing link's token is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactedAccessLog) for f in access.filters):
        access.addFilter(RedactedAccessLog())


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `run_until_signal`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a process's main coroutine on uvloop (libuv: less CPU per request and per job than asyncio's loop),
    or on asyncio's own loop where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux and macOS
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# prctl(2): the signal the kernel sends this process when the thread that started it exits
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM this process (a graceful stop) when its parent dies, so a SIGKILLed supervisor leaves no
    worker serving its socket on its own; at once when the parent is gone already."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("could not ask to stop with the supervisor (prctl errno %s)", ctypes.get_errno())
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerConfig(uvicorn.Config):
    """uvicorn's config of a supervised worker process: the child (spawned, where uvicorn configures logging
    first) stops when the supervisor dies."""

    def configure_logging(self) -> None:
        super().configure_logging()
        parent = multiprocessing.parent_process()
        if parent is not None and parent.pid is not None:
            die_with_parent(parent.pid)


def server_config(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    access_log: bool = True,
    forwarded_allow_ips: str = "127.0.0.1,::1",
    request_read_seconds: float = REQUEST_READ_SECONDS,
    config_class: type[uvicorn.Config] = uvicorn.Config,
    **extra: Any,
) -> uvicorn.Config:
    """uvicorn believes X-Forwarded-For only from `forwarded_allow_ips` (the reverse proxy) and then takes the
    right-most address that is not a trusted proxy: entries the client wrote itself, to the left, are ignored.
    Each request's headers and body must arrive within `request_read_seconds` (payment.slow_clients)."""
    protocol = (
        DeadlineProtocol
        if request_read_seconds == REQUEST_READ_SECONDS
        else type("DeadlineProtocol", (DeadlineProtocol,), {"read_seconds": request_read_seconds})
    )
    return config_class(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=int(GRACE_SECONDS) - 5,
        proxy_headers=True,
        server_header=False,
        forwarded_allow_ips=forwarded_allow_ips,
        http=protocol,
        **extra,
    )


def serve_processes(
    factory: str,
    host: str,
    port: int,
    *,
    workers: int,
    log_level: str = "info",
    forwarded_allow_ips: str = "127.0.0.1,::1",
) -> None:
    """Serve the app made by the `module:function` factory from `workers` processes sharing one socket (uvicorn's
    supervisor: SIGTERM reaches every worker, each finishes its in-flight requests, a dead one is replaced; a
    worker whose supervisor dies, even SIGKILLed, gets SIGTERM from the kernel). Each worker redacts its own access
    log (the factory calls `redact_access_log`)."""
    config = server_config(
        factory,
        host,
        port,
        log_level=log_level,
        forwarded_allow_ips=forwarded_allow_ips,
        factory=True,
        workers=workers,
        loop="uvloop",
        config_class=WorkerConfig,
        # uvicorn's 5 s: on a busy host a starting worker (imports, app factory) answers the first health check
        # later than that, and is killed and replaced, again and again
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    redact_access_log()
    Multiprocess(config, sockets=[config.bind_socket()]).run()


def make_server(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    access_log: bool = True,
    forwarded_allow_ips: str = "127.0.0.1,::1",
    request_read_seconds: float = REQUEST_READ_SECONDS,
) -> QuietServer:
    config = server_config(
        app,
        host,
        port,
        log_level=log_level,
        access_log=access_log,
        forwarded_allow_ips=forwarded_allow_ips,
        request_read_seconds=request_read_seconds,
    )
    redact_access_log()
    return QuietServer(config)


async def run_until_signal(
    servers: list[QuietServer],
    workers: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    *,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then stop the servers first and the workers after them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server_tasks = [asyncio.create_task(s.serve()) for s in servers]
    worker_tasks = [asyncio.create_task(w()) for w in workers]
    while not all(s.started for s in servers):
        if any(t.done() for t in server_tasks):
            break
        await asyncio.sleep(0.05)
    failed = [t for t in server_tasks if t.done()]
    if not failed and on_started is not None:
        on_started()
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *server_tasks, *worker_tasks], return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down (grace %.0f s)", GRACE_SECONDS)
    for server in servers:
        server.should_exit = True
    if server_tasks:  # `payment worker` runs no server; asyncio.wait refuses an empty set
        await asyncio.wait(server_tasks, timeout=GRACE_SECONDS)
    for task in worker_tasks:
        task.cancel()  # procrastinate: stop fetching, let running jobs finish
    if worker_tasks:
        await asyncio.wait(worker_tasks, timeout=GRACE_SECONDS)
    stopper.cancel()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    # a server that failed, or a worker that gave up (it outlives database outages), makes the process fail
    for task in [*server_tasks, *worker_tasks]:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
