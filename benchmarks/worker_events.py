"""Stripe events applied per second by one `payment worker` while Stripe answers in `--latency-ms`, ours vs before.

    python benchmarks/worker_events.py [--backlog 2000:100 [--backlog 1200:1200 ...]] [--latency-ms 150]
                                       [--rounds 2] [--before PATH | --before-ref REF] [--concurrency N]
                                       [--before-concurrency N] [--profile cprofile|py-spy]

- Stripe: `payment sandbox` in its own process, `--latency-ms` added to every API answer. It first holds enough
  real subscriptions (checkout paid, then one renewal; OBJECTS / 2 of the largest backlog), made and applied with no
  latency; then it is started again on the same state file with the latency.
- A backlog `EVENTS:OBJECTS`: EVENTS copies (each with its own event id, as Stripe's stream of updates) of the
  renewal's `customer.subscription.updated` and `invoice.paid` events of OBJECTS Stripe objects (each object gets
  EVENTS / OBJECTS events, so `2000:100` coalesces 20 events into one Stripe read and `1200:1200` coalesces
  nothing); stored with their jobs in one transaction, exactly as the webhook stores them
  (payment/stripe/inbox.py), while the worker already waits (its startup, and the catch-up of the sandbox's
  event history it runs first, are not measured). Each `--backlog` is measured in its own rounds.
- Each side: one `payment worker` process (its own default concurrency unless `--concurrency` /
  `--before-concurrency`), on a fresh copy of the seeded database (`CREATE DATABASE ... TEMPLATE`), from its
  checkout (`--before PATH`, or `--before-ref REF`: `git archive REF` of this repository unpacked into a temporary
  directory, e.g. `--before-ref main`). The before side runs on ours' schema (migrations only add what older code
  does not read).
- Rounds alternate the sides (ours, before / before, ours ...). Each prints events/s (from the commit of the backlog
  to the last event handled), the worker process's CPU ms per event, and the load average beside it; then the CPU
  ms per event of the three processes sharing the cores: the worker, the sandbox, and PostgreSQL (the postmaster
  and its backends, those that exited during the round included); and the Stripe requests per event, by route.
- `--profile cprofile` runs ours' worker of the last round under cProfile counting CPU time from the backlog's
  commit on (its CPU per event is then inflated by the profiler) and prints the functions that took the most CPU;
  `--profile py-spy` (needs `py-spy` on PATH) samples it instead (idle samples, the loop waiting in select, are not
  taken) and prints the worker's CPU by library (own time by the leaf frame's library, and inclusive: samples with
  any frame of that library), the top functions (own time), and our own functions (inclusive). The raw profile is
  kept; its path is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import CLOCK_TICKS, archive, load_average, tree_cpu_seconds, wait_listening  # noqa: E402
from benchmarks.pgserver import server  # noqa: E402
from payment import migrate  # noqa: E402
from payment.embedded_pg import free_port  # noqa: E402
from payment.jobs.stripe_events import APPLY_TASK  # noqa: E402
from payment.stripe.handlers import HANDLED_TYPES  # noqa: E402
from payment.stripe.inbox import store_and_defer  # noqa: E402
from tests.support.app import running_services  # noqa: E402
from tests.support.db import settings_for  # noqa: E402
from tests.support.stripe import World  # noqa: E402

SEED_DB = "wbench_seed"
PY_SPY_RATE = 200  # samples a second
BACKLOG_TYPES = ("customer.subscription.updated", "invoice.paid")


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def sandbox(port: int, state_file: str, latency_ms: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "payment.cli", "sandbox", "--port", str(port), "--state-file", state_file]
    command += ["--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "LOG_LEVEL": "WARNING"})
    wait_listening(port, process)
    return process


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's postmaster: the parent of a backend, read while it lives (None when the server is
    not on this machine)."""

    async def parent() -> int | None:
        conn = await asyncpg.connect(url)
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            stat = f"/proc/{backend}/stat"
            with open(stat) as fh:  # noqa: ASYNC230 - /proc, a benchmark's setup
                return int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None
        finally:
            await conn.close()

    return asyncio.run(parent())


def postgres_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of the postmaster, of its live backends, and of those it has reaped (its cutime/cstime):
    backends come and go during a round, so the difference over a round counts all of them."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[11..14] are utime, stime, cutime, cstime; tree_cpu_seconds counts utime + stime of it and its children
    return tree_cpu_seconds(pid) + (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def sandbox_requests(sandbox_url: str) -> Counter[str]:
    """The API requests the sandbox has answered, by method and route (an older sandbox counts none)."""
    import httpx

    answer = httpx.get(f"{sandbox_url}/_sandbox/requests", timeout=10)
    return Counter(answer.json()) if answer.status_code == 200 else Counter()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def seed(url: str, sandbox_url: str, customers: int) -> list[dict[str, Any]]:
    """Subscriptions paid and renewed in the sandbox, their history applied; returns the backlog's model events."""
    async with running_services(settings_for(url, stripe_api_base=sandbox_url)) as services:
        world = World(services, sandbox_url)
        plan = await world.plan()
        for _ in range(customers):
            await world.subscribe(await world.customer(), plan)
        seen = len(await world.events())
        await world.advance(31)
        history = await world.events()
        await world.apply_all([e for e in history if e["type"] in HANDLED_TYPES])
        return [e for e in history[seen:] if e["type"] in BACKLOG_TYPES]


async def store_backlog(url: str, bodies: list[tuple[dict[str, Any], bytes]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for event, body in bodies:
                await store_and_defer(conn, event, body, task=APPLY_TASK)
    finally:
        await conn.close()


async def wait_for(url: str, sql: str, done: Any, timeout: float, every: float = 0.1) -> Any:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            value = await conn.fetchrow(sql)
            if done(value) or time.monotonic() > deadline:
                return value
            await asyncio.sleep(every)
    finally:
        await conn.close()


_CAUGHT_UP = """
    SELECT EXISTS (SELECT FROM procrastinate_periodic_defers WHERE task_name LIKE '%catch_up_stripe_events')
           AND NOT EXISTS (SELECT FROM procrastinate_jobs WHERE task_name LIKE '%catch_up_stripe_events'
                                                            AND status IN ('todo', 'doing')) AS done
"""
_PROGRESS = """
    SELECT count(*) FILTER (WHERE status IN ('handled', 'ignored', 'failed')) AS finished,
           count(*) FILTER (WHERE status = 'failed') AS failed
      FROM stripe_events WHERE stripe_event_id LIKE 'evt_wbench_%'
"""


# `payment worker` under cProfile counting CPU time (not wall time: on a busy machine a wall-clock profile charges
# the time the process waited for a core to whatever ran next), enabled on SIGUSR1, written at exit.
_PROFILED = """
import cProfile, signal, sys, time
from payment.cli import main
profiler = cProfile.Profile(time.process_time)
signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
sys.argv[0] = "payment"
try:
    main()
finally:
    profiler.disable()
    profiler.dump_stats({out!r})
"""


def one_round(
    side: str,
    root: Path,
    url: str,
    sandbox_url: str,
    bodies: list[tuple[dict[str, Any], bytes]],
    concurrency: int | None,
    timeout: float,
    profile: str | None,
    profile_out: Path,
    sandbox_pid: int,
    postgres_pid: int | None,
) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "APP_ENV": "test",
        "DATABASE_URL": url,
        "STRIPE_API_BASE": sandbox_url,
        "LOG_LEVEL": "WARNING",
        # the nightly check against Stripe (03:23 by default) would run in a worker started in the 10 minutes after
        "RECONCILIATION_CRON": "0 12 31 12 *",
    }
    if concurrency:
        env["WORKER_CONCURRENCY"] = str(concurrency)
    else:
        env.pop("WORKER_CONCURRENCY", None)
    command = [sys.executable, "-m", "payment.cli", "worker"]
    if profile == "cprofile":
        command = [sys.executable, "-c", _PROFILED.format(out=str(profile_out)), "worker"]
    worker = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL)
    spy: subprocess.Popen[bytes] | None = None
    sandbox_spy: subprocess.Popen[bytes] | None = None
    try:
        registered = asyncio.run(
            wait_for(url, "SELECT count(*) AS n FROM procrastinate_workers", lambda r: r["n"] > 0, 60)
        )
        if registered["n"] == 0:
            raise SystemExit(f"{side}: the worker did not start")
        # the catch-up a worker runs as it starts pulls the sandbox's whole event history: over before the backlog
        asyncio.run(wait_for(url, _CAUGHT_UP, lambda r: r["done"], 120))
        if profile == "py-spy":
            spy_cpu = tree_cpu_seconds(worker.pid)
            record = ["py-spy", "record", "--format", "raw", "--rate", str(PY_SPY_RATE), "-o", str(profile_out)]
            spy = subprocess.Popen(
                [*record, "--pid", str(worker.pid)],
                stdout=subprocess.DEVNULL,
            )
            # the sandbox too: it shares the cores, and its CPU per request is ours to keep small
            sandbox_spy = subprocess.Popen(
                [*record[:-1], str(sandbox_profile(profile_out)), "--pid", str(sandbox_pid)],
                stdout=subprocess.DEVNULL,
            )
        if profile == "cprofile":
            worker.send_signal(signal.SIGUSR1)  # start profiling now: the startup is not measured
        cpu_before = tree_cpu_seconds(worker.pid)
        others_before = tree_cpu_seconds(sandbox_pid), postgres_cpu_seconds(postgres_pid)
        requests_before = sandbox_requests(sandbox_url)
        asyncio.run(store_backlog(url, bodies))
        started = time.monotonic()
        progress = asyncio.run(wait_for(url, _PROGRESS, lambda r: r["finished"] >= len(bodies), timeout))
        seconds = time.monotonic() - started
        per_event = 1000 / max(1, progress["finished"])
        cpu_ms = (tree_cpu_seconds(worker.pid) - cpu_before) * per_event
        sandbox_ms = (tree_cpu_seconds(sandbox_pid) - others_before[0]) * per_event
        postgres_ms = (postgres_cpu_seconds(postgres_pid) - others_before[1]) * per_event
        requests = sandbox_requests(sandbox_url) - requests_before
        load = load_average()
        served = asyncio.run(
            wait_for(
                url,
                "SELECT count(*) FILTER (WHERE details ? 'applied_with_event_row_id') AS along, count(*) AS all "
                "FROM audit_log WHERE action LIKE 'stripe.%' AND details->>'stripe_event_id' LIKE 'evt_wbench_%'",
                lambda r: True,
                1,
            )
        )
    finally:
        if spy is not None:
            spy_cpu = tree_cpu_seconds(worker.pid) - spy_cpu
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(60)
        if sandbox_spy is not None:
            sandbox_spy.send_signal(signal.SIGINT)
            sandbox_spy.wait(60)
        stop(worker)
    shown = f"concurrency {concurrency}" if concurrency else "default concurrency"
    if spy is not None:  # how many samples the worker's CPU makes at the rate: the rest were waits
        shown += f"; py-spy window: worker CPU {spy_cpu:.1f} s = {spy_cpu * PY_SPY_RATE:.0f} samples' worth"
    postgres = f"{postgres_ms:5.1f}" if postgres_pid is not None else "  n/a"
    return (
        f"{side:6} {progress['finished']:5d}/{len(bodies)} events in {seconds:6.1f} s = "
        f"{progress['finished'] / seconds:6.1f} events/s, {cpu_ms:5.1f} CPU ms/event (worker process), "
        f"{progress['failed']} failed, {served['along']} applied with another event's snapshot, {shown} | {load}\n"
        f"{'':9}CPU ms/event: worker {cpu_ms:5.1f}, sandbox {sandbox_ms:5.1f}, PostgreSQL {postgres} "
        f"(whole server), sum {cpu_ms + sandbox_ms + (postgres_ms if postgres_pid is not None else 0):5.1f}\n"
        f"{'':9}Stripe requests/event {requests.total() * per_event / 1000:.2f}: "
        + ", ".join(f"{route} {n * per_event / 1000:.2f}" for route, n in requests.most_common())
    )


def sandbox_profile(worker_profile: Path) -> Path:
    return worker_profile.with_name(f"{worker_profile.stem}-sandbox{worker_profile.suffix}")


def print_profile(profile: str, path: Path, top: int = 30) -> None:
    if not path.exists():
        print(f"no profile written ({path})")
        return
    if profile == "cprofile":
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return
    print_py_spy(path, top)
    if sandbox_profile(path).exists():
        print("\nthe sandbox (same window):")
        print_py_spy(sandbox_profile(path), top // 2)


# a py-spy frame: "function (path:line)", the path relative to its sys.path entry ("payment/jobs/worker.py",
# "sqlalchemy/orm/session.py", "asyncio/base_events.py", "<frozen importlib._bootstrap>")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")
# a path's first component -> the library it is counted under
LIBRARIES = {
    "payment": "ours (payment/*)",
    "sqlalchemy": "sqlalchemy",
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "psycopg_binary": "psycopg",
    "procrastinate": "procrastinate",
    "httpx": "httpx/httpcore/h11/anyio",
    "httpcore": "httpx/httpcore/h11/anyio",
    "h11": "httpx/httpcore/h11/anyio",
    "anyio": "httpx/httpcore/h11/anyio",
    "sniffio": "httpx/httpcore/h11/anyio",
    "stripe": "stripe",
    "json": "json",
    "asyncio": "asyncio (event loop)",
    "uvloop": "asyncio (event loop)",
    "selectors.py": "asyncio (event loop)",
    "sentry_sdk": "sentry_sdk",
    "logging": "logging",
    "typing.py": "typing",
}


def frame_parts(frame: str) -> tuple[str, str]:
    """(function, path) of a py-spy frame, without the line number."""
    match = _FRAME.match(frame)
    return (match.group("function"), match.group("path")) if match else (frame, "")


def library_of(frame: str) -> str:
    path = frame_parts(frame)[1]
    if "site-packages/" in path:  # a full path, when py-spy did not shorten it
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(f"{ROOT}/"):
        path = path[len(str(ROOT)) + 1 :]
    first = path.split("/", 1)[0]
    if not first:
        return "(no Python file: native)"
    return LIBRARIES.get(first) or ("stdlib, other" if first.endswith(".py") or first.startswith("<") else first)


# the frames under which the loop runs a callback (asyncio's Handle._run; on uvloop, whose loop is C, the Runner)
_LOOP_FRAMES = {("Handle._run", "asyncio/events.py"), ("Runner.run", "asyncio/runners.py")}


def in_loop(frames: list[str]) -> bool:
    """A sample with no Python frame under the loop: asyncio waiting in select, or uvloop in its own C code
    (libuv waiting in epoll, or its transports' callbacks): py-spy without --idle leaves out a thread it sees
    sleeping, but not always (it catches one entering or leaving the wait)."""
    function, path = frame_parts(frames[-1])
    return (path == "selectors.py" and function.endswith("select")) or (function, path) in _LOOP_FRAMES


def print_py_spy(path: Path, top: int) -> None:
    """py-spy's raw format: "frame;frame;...;leaf count" per line (idle samples are not recorded by default)."""
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    own_library: Counter[str] = Counter()
    inclusive_library: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f"{function} ({file})" for function, file in (frame_parts(f) for f in stack.split(";"))]
        if in_loop(frames):
            idle += n
            continue
        total += n
        own[frames[-1]] += n
        own_library[library_of(frames[-1])] += n
        # inclusive: what runs in the loop's callback (its task's coroutines), not the frames every sample has
        # (payment.cli, asyncio.run, the loop's _run_once)
        run = [i for i, f in enumerate(frames) if frame_parts(f) in _LOOP_FRAMES]
        inside = frames[run[-1] + 1 :] if run else frames
        for library in {library_of(f) for f in inside} or {library_of(frames[-1])}:
            inclusive_library[library] += n
        for frame in {f for f in inside if library_of(f) == LIBRARIES["payment"]}:
            ours[frame] += n
    print(
        f"py-spy: {total} samples in Python code; {idle} more with no Python frame under the loop (left "
        f"out: waiting in epoll/select, or uvloop's C code) ({path})"
    )
    print(f"{'CPU by library':32} {'own':>6} {'inclusive':>10}")
    for library, n in sorted(inclusive_library.items(), key=lambda item: -item[1]):
        print(f"{library:32} {100 * own_library[library] / max(1, total):5.1f}% {100 * n / max(1, total):9.1f}%")
    print("own time by function")
    for frame, n in own.most_common(top):
        print(f"{100 * n / max(1, total):5.1f}%  {frame}")
    print("time under our own functions (inclusive)")
    for frame, n in ours.most_common(top):
        print(f"{100 * n / max(1, total):5.1f}%  {frame}")


def parse_backlog(value: str) -> tuple[int, int]:
    events, _, objects = value.partition(":")
    try:
        found = int(events), int(objects)
    except ValueError:
        raise argparse.ArgumentTypeError("EVENTS:OBJECTS, e.g. 1200:1200") from None
    if found[0] < found[1] or found[1] < 1:
        raise argparse.ArgumentTypeError("at least one event per object")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--backlog",
        type=parse_backlog,
        action="append",
        metavar="EVENTS:OBJECTS",
        help="a backlog of EVENTS over OBJECTS Stripe objects (repeatable; default 2000:100 and 1200:1200)",
    )
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    parser.add_argument("--before-ref", help="a git ref of this repository to compare against (git archive)")
    parser.add_argument("--concurrency", type=int, help="WORKER_CONCURRENCY of ours (default: its own default)")
    parser.add_argument("--before-concurrency", type=int, help="WORKER_CONCURRENCY of before (default: its own)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a side may take to drain the backlog")
    parser.add_argument("--profile", choices=("cprofile", "py-spy"), help="profile ours' worker (last round)")
    args = parser.parse_args()
    backlogs: list[tuple[int, int]] = args.backlog or [(2000, 100), (1200, 1200)]
    concurrency = {"ours": args.concurrency, "before": args.before_concurrency}
    with server() as admin_url, tempfile.TemporaryDirectory(prefix="aquoris-wbench-") as scratch:
        roots = {"ours": ROOT}
        if args.before:
            roots["before"] = args.before.resolve()
        elif args.before_ref:
            roots["before"] = archive(args.before_ref, Path(scratch) / "before")
        asyncio.run(admin(admin_url, f'CREATE DATABASE "{SEED_DB}"'))
        seed_url = database_url(admin_url, SEED_DB)
        migrate.upgrade(seed_url)
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        state_file = str(Path(scratch) / "sandbox.json")
        customers = (max(objects for _, objects in backlogs) + 1) // 2
        process = sandbox(port, state_file, 0)
        try:
            t0 = time.monotonic()
            models = asyncio.run(seed(seed_url, sandbox_url, customers))
        finally:
            stop(process)
        # one model event per Stripe object (its last), subscriptions and invoices interleaved
        by_object = {e["data"]["object"]["id"]: e for e in models}
        print(
            f"seeded {customers} subscriptions in {time.monotonic() - t0:.1f} s: {len(by_object)} Stripe objects "
            f"({', '.join(BACKLOG_TYPES)}); Stripe latency {args.latency_ms} ms",
            flush=True,
        )
        postgres = postmaster_pid(admin_url)
        process = sandbox(port, state_file, args.latency_ms)
        try:
            for events, objects in backlogs:
                chosen = list(by_object.values())[:objects]
                bodies = []
                for i in range(events):
                    event = {**chosen[i % len(chosen)], "id": f"evt_wbench_{i:06d}"}
                    bodies.append((event, json.dumps(event, default=str).encode()))
                print(f"backlog {events}:{len(chosen)}: {events} events over {len(chosen)} Stripe objects")
                # kept after the run (outside the scratch folder): the raw profile, for another look
                suffix = "pstats" if args.profile == "cprofile" else "txt"
                profile_out = Path(tempfile.gettempdir()) / f"aquoris-wbench-{os.getpid()}-{events}x{objects}.{suffix}"
                for n in range(args.rounds):
                    sides = list(roots) if n % 2 == 0 else list(reversed(roots))
                    for side in sides:
                        name = f"wbench_{side}_{n}"
                        profiling = args.profile if side == "ours" and n == args.rounds - 1 else None
                        asyncio.run(admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{SEED_DB}"'))
                        try:
                            line = one_round(
                                side,
                                roots[side],
                                database_url(admin_url, name),
                                sandbox_url,
                                bodies,
                                concurrency[side],
                                args.timeout,
                                profiling,
                                profile_out,
                                process.pid,
                                postgres,
                            )
                        finally:
                            asyncio.run(admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                        print(f"round {n + 1}: {line}", flush=True)
                if args.profile:
                    print_profile(args.profile, profile_out)
        finally:
            stop(process)


if __name__ == "__main__":
    main()
