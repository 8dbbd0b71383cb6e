"""Where PostgreSQL's time per Stripe event goes while one `payment worker` applies a backlog.

    python benchmarks/pg_statements.py [--backlog 300:300] [--latency-ms 150] [--top 25] [--concurrency N]

benchmarks/worker_events.py shows PostgreSQL's whole CPU per event; this says which statements it is spent on.
- Its own embedded PostgreSQL (benchmarks/pgserver.py takes no server options), in /dev/shm like it, with
  pg_stat_statements preloaded (`track=all`: statements run inside Procrastinate's functions and triggers are
  counted as nested ones, `track_planning=on`) and `track_functions=all`.
- Seeds and runs one round exactly as benchmarks/worker_events.py (its functions), sandbox at `--latency-ms`.
  The statistics are reset right before the backlog is committed; the backlog is stored by another role
  (`bench_store`), so the webhook's share (store_and_defer and the triggers it fires) is told apart from the
  worker's by pg_stat_statements' userid.
- Prints, per event: the top statements by total execution time (calls, ms, mean ms, rows, planning ms), grouped
  (ours: the apply transaction; procrastinate: its functions' calls and, nested, what runs inside them; txn:
  BEGIN/COMMIT...; store: the backlog's storing; bench: this benchmark's polling; other), the group totals as
  shares of the top-level time (nested statements are inside their caller's time), PL/pgSQL functions
  (pg_stat_user_functions: calls, total and self ms), the database's commits/rollbacks/sessions, tuples and WAL,
  and PostgreSQL's CPU per event by process kind (backends, autovacuum, walwriter ...).
Execution time is wall time inside the server (it includes lock waits and, for COMMIT, the WAL flush), not CPU:
read it for proportions next to the CPU by process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import worker_events as we  # noqa: E402
from benchmarks.loadgen import CLOCK_TICKS, load_average  # noqa: E402
from payment import migrate  # noqa: E402
from payment.embedded_pg import EmbeddedPostgres, free_port  # noqa: E402

ROUND_DB = "pgstat_round"
STORE_ROLE = "bench_store"
SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_planning": "on",
    "pg_stat_statements.max": "10000",
    "track_functions": "all",
}


def configured_server(scratch: str) -> EmbeddedPostgres:
    """The embedded server, restarted once with pg_stat_statements preloaded (ALTER SYSTEM: postgresql.auto.conf)."""
    pg = EmbeddedPostgres(scratch)
    pg.start()
    for name, value in SERVER_SETTINGS.items():
        pg.psql(f"ALTER SYSTEM SET {name} = '{value}'")
    pg.stop()
    pg.start()
    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    pg.psql(f"CREATE ROLE {STORE_ROLE} LOGIN SUPERUSER PASSWORD '{pg.password}'")
    return pg


def process_cpu(postmaster: int) -> tuple[dict[int, tuple[str, float]], float]:
    """The postmaster's live children (pid -> (kind, CPU s), the postmaster itself included) and the CPU of the
    children it has reaped (its cutime + cstime)."""
    found: dict[int, tuple[str, float]] = {}
    reaped = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        pid = int(entry.name)
        if pid != postmaster and int(fields[1]) != postmaster:
            continue
        if pid == postmaster:
            reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
        found[pid] = (process_kind(title, pid == postmaster), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found, reaped


def process_kind(title: str, postmaster: bool) -> str:
    if postmaster:
        return "postmaster"
    words = title.removeprefix("postgres:").split()
    # a backend: "postgres: USER DATABASE HOST(PORT) STATE"
    if len(words) >= 3 and "(" in words[2]:
        return f"backend {words[0]}"
    return " ".join(w for w in words if not w[0].isdigit())[:40] or "?"


def cpu_by_kind(
    before: tuple[dict[int, tuple[str, float]], float], after: tuple[dict[int, tuple[str, float]], float]
) -> dict[str, float]:
    kinds: dict[str, float] = defaultdict(float)
    for pid, (kind, cpu) in after[0].items():
        start = before[0].get(pid, (kind, 0.0))[1]
        kinds[kind] += cpu - start
    # exited backends (the worker's, at its stop; connections that came and went) are reaped by the postmaster
    kinds["exited processes (reaped)"] += after[1] - before[1]
    return kinds


_STATEMENTS = """
SELECT s.toplevel, r.rolname AS role, s.query, s.calls, s.plans, s.total_exec_time, s.total_plan_time, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.shared_blks_dirtied, s.wal_records, s.wal_bytes
  FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
 WHERE s.dbid = $1
"""
_DATABASE = """
SELECT xact_commit, xact_rollback, sessions, tup_inserted, tup_updated, tup_deleted, tup_returned, tup_fetched,
       blks_hit, blks_read, deadlocks
  FROM pg_stat_database WHERE datname = $1
"""
_WAL = "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"
_IO = "SELECT coalesce(sum(fsyncs), 0) AS fsyncs, coalesce(sum(writes), 0) AS writes FROM pg_stat_io"
_FUNCTIONS = """
SELECT schemaname || '.' || funcname AS function, calls, total_time, self_time
  FROM pg_stat_user_functions ORDER BY total_time DESC
"""
_TABLES = """
SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del,
       n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count
  FROM pg_stat_user_tables ORDER BY seq_tup_read + coalesce(idx_tup_fetch, 0) DESC
"""
_SETTINGS = """
SELECT name, setting FROM pg_settings
 WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'full_page_writes',
                'wal_level', 'shared_buffers', 'jit', 'autovacuum', 'plan_cache_mode', 'max_wal_size')
"""


def group_of(role: str, query: str) -> str:
    text = " ".join(query.split()).lower()
    if role == STORE_ROLE:
        return "store"
    if text.split(" ", 1)[0] in {"begin", "commit", "rollback", "start", "savepoint", "release"}:
        return "txn"
    if "filter (where status in" in text or text.endswith("from procrastinate_workers") or "_caught_up" in text:
        return "bench"
    if "procrastinate" in text:
        return "procrastinate"
    if text.startswith(("set ", "show ", "listen", "unlisten", "select pg_catalog", "select pg_advisory_unlock")):
        return "other"
    if "pg_catalog." in text or "pg_type" in text or "pg_backend_pid" in text:
        return "other"
    return "ours"


def short(query: str, width: int = 110) -> str:
    text = " ".join(query.split())
    return text if len(text) <= width else text[: width - 3] + "..."


async def snapshot(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "database": dict(await conn.fetchrow(_DATABASE, ROUND_DB) or {}),
            "wal": dict(await conn.fetchrow(_WAL) or {}),
            "io": dict(await conn.fetchrow(_IO) or {}),
        }
    finally:
        await conn.close()


async def reset(admin_url: str, database_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    in_database = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")  # the extension lives in `postgres`
        await in_database.execute("SELECT pg_stat_reset()")  # this database's counters and function statistics
        await conn.execute("SELECT pg_stat_reset_shared('wal')")
        await conn.execute("SELECT pg_stat_reset_shared('io')")
    finally:
        await conn.close()
        await in_database.close()


async def collect(url: str, database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    in_database = await asyncpg.connect(database_url)
    try:
        dbid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = $1", ROUND_DB)
        return {
            "statements": [dict(r) for r in await conn.fetch(_STATEMENTS, dbid)],
            "functions": [dict(r) for r in await in_database.fetch(_FUNCTIONS)],
            "tables": [dict(r) for r in await in_database.fetch(_TABLES)],
            "settings": {r["name"]: r["setting"] for r in await conn.fetch(_SETTINGS)},
            **await snapshot(url),
        }
    finally:
        await conn.close()
        await in_database.close()


def report(found: dict[str, Any], start: dict[str, Any], events: int, top: int) -> None:
    per = 1 / max(1, events)
    print("\nsettings: " + ", ".join(f"{k}={v}" for k, v in sorted(found["settings"].items())))
    statements = found["statements"]
    toplevel_ms = sum(s["total_exec_time"] for s in statements if s["toplevel"])
    plan_ms = sum(s["total_plan_time"] for s in statements if s["toplevel"])
    print(
        f"\ntop-level statements: {toplevel_ms * per:.2f} ms execution + {plan_ms * per:.2f} ms planning per event "
        f"({sum(s['calls'] for s in statements if s['toplevel']) * per:.1f} statements/event)"
    )
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for s in statements:
        key = group_of(s["role"], s["query"]) + ("" if s["toplevel"] else " (nested)")
        groups[key][0] += s["calls"] * per
        groups[key][1] += s["total_exec_time"] * per
        groups[key][2] += s["total_plan_time"] * per
    print(f"{'group':26} {'calls/ev':>9} {'exec ms/ev':>11} {'share':>6} {'plan ms/ev':>11}")
    for key, (calls, ms, plan) in sorted(groups.items(), key=lambda item: -item[1][1]):
        share = f"{100 * ms / max(toplevel_ms * per, 1e-9):5.1f}%" if "nested" not in key else "  (in)"
        print(f"{key:26} {calls:9.2f} {ms:11.3f} {share:>6} {plan:11.3f}")
    print(
        f"\ntop {top} statements by execution time (per event; share of the top-level time; nested ones are "
        "inside their caller's)"
    )
    print(
        f"{'group':22} {'calls':>6} {'ms':>7} {'share':>6} {'mean ms':>8} {'rows':>6} {'plan ms':>7} {'WAL B':>6}"
        f" {'plans':>5}  query"
    )
    for s in sorted(statements, key=lambda s: -s["total_exec_time"])[:top]:
        key = group_of(s["role"], s["query"]) + ("" if s["toplevel"] else " (nested)")
        print(
            f"{key:22} {s['calls'] * per:6.2f} {s['total_exec_time'] * per:7.3f} "
            f"{100 * s['total_exec_time'] / max(toplevel_ms, 1e-9):5.1f}% "
            f"{s['total_exec_time'] / max(1, s['calls']):8.3f} {s['rows'] * per:6.2f} "
            f"{s['total_plan_time'] * per:7.3f} {int(s['wal_bytes']) * per:6.0f} {s['plans'] * per:5.2f}  "
            f"{short(s['query'])}"
        )
    print("\nby calls per event (top 15)")
    for s in sorted(statements, key=lambda s: -s["calls"])[:15]:
        key = group_of(s["role"], s["query"]) + ("" if s["toplevel"] else " (nested)")
        print(f"{key:22} {s['calls'] * per:6.2f} {s['total_exec_time'] * per:7.3f} ms  {short(s['query'])}")
    print("\nPL/pgSQL functions (track_functions=all), per event")
    for f in found["functions"][:15]:
        print(
            f"  {f['function']:50} calls {f['calls'] * per:5.2f}, total {f['total_time'] * per:6.3f} ms, "
            f"self {f['self_time'] * per:6.3f} ms"
        )
    print("\ntables (pg_stat_user_tables since the reset), per event")
    for t in found["tables"][:12]:
        shown = {k: v for k, v in t.items() if k != "relname"}
        print(f"  {t['relname']:32} " + ", ".join(f"{k} {float(v or 0) * per:.2f}" for k, v in shown.items()))
    db = {k: v - start["database"].get(k, 0) for k, v in found["database"].items()}
    print("\ndatabase, per event: " + ", ".join(f"{k} {v * per:.2f}" for k, v in db.items()))
    wal = {k: float(v) - float(start["wal"].get(k, 0)) for k, v in found["wal"].items()}
    io = {k: float(v) - float(start["io"].get(k, 0)) for k, v in found["io"].items()}
    print(
        f"WAL per event: {wal['wal_records'] * per:.1f} records, {wal['wal_fpi'] * per:.2f} full pages, "
        f"{wal['wal_bytes'] * per:.0f} bytes; pg_stat_io per event: fsyncs {io['fsyncs'] * per:.2f}, "
        f"writes {io['writes'] * per:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backlog", type=we.parse_backlog, default=(300, 300), metavar="EVENTS:OBJECTS")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--concurrency", type=int, help="WORKER_CONCURRENCY (default: its own default)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    events, objects = args.backlog
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="aquoris-pgstat-", dir=shm) as scratch:
        pg = configured_server(scratch)
        try:
            run(pg, scratch, events, objects, args)
        finally:
            pg.stop()


def run(pg: EmbeddedPostgres, scratch: str, events: int, objects: int, args: argparse.Namespace) -> None:
    admin_url = pg.url("postgres")
    asyncio.run(we.admin(admin_url, f'CREATE DATABASE "{we.SEED_DB}"'))
    seed_url = we.database_url(admin_url, we.SEED_DB)
    migrate.upgrade(seed_url)
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    state_file = str(Path(scratch) / "sandbox.json")
    process = we.sandbox(port, state_file, 0)
    try:
        t0 = time.monotonic()
        models = asyncio.run(we.seed(seed_url, sandbox_url, (objects + 1) // 2))
    finally:
        we.stop(process)
    by_object = {e["data"]["object"]["id"]: e for e in models}
    chosen = list(by_object.values())[:objects]
    bodies = []
    for i in range(events):
        event = {**chosen[i % len(chosen)], "id": f"evt_wbench_{i:06d}"}
        bodies.append((event, json.dumps(event, default=str).encode()))
    print(f"seeded in {time.monotonic() - t0:.1f} s; backlog {events}:{len(chosen)}; latency {args.latency_ms} ms")
    postmaster = we.postmaster_pid(admin_url)
    if postmaster is None:
        raise SystemExit("the embedded server's postmaster is not visible")
    round_url = we.database_url(admin_url, ROUND_DB)
    store_url = round_url.replace("//postgres:", f"//{STORE_ROLE}:", 1)
    store_backlog = we.store_backlog
    started: dict[str, Any] = {}

    async def reset_then_store(url: str, bodies: list[tuple[dict[str, Any], bytes]]) -> None:
        """worker_events.one_round's store of the backlog, with the statistics reset right before it."""
        await reset(admin_url, round_url)
        started.update(await snapshot(admin_url))
        started["cpu"] = process_cpu(postmaster)
        await store_backlog(store_url, bodies)

    we.store_backlog = reset_then_store
    asyncio.run(we.admin(admin_url, f'CREATE DATABASE "{ROUND_DB}" TEMPLATE "{we.SEED_DB}"'))
    process = we.sandbox(port, state_file, args.latency_ms)
    try:
        line = we.one_round(
            "ours",
            ROOT,
            round_url,
            sandbox_url,
            bodies,
            args.concurrency,
            args.timeout,
            None,
            Path(scratch) / "unused",
            process.pid,
            postmaster,
        )
        cpu_after = process_cpu(postmaster)
        found = asyncio.run(collect(admin_url, round_url))
    finally:
        we.stop(process)
    raw = Path(tempfile.gettempdir()) / f"aquoris-pgstat-{os.getpid()}.json"
    raw.write_text(json.dumps({"found": found, "start": started, "events": events}, default=str))
    print(line)
    print(f"raw statistics: {raw}")
    print(f"load average after: {load_average()}")
    kinds = cpu_by_kind(started["cpu"], cpu_after)
    total = sum(kinds.values())
    print(
        "\nPostgreSQL CPU per event by process, from the reset to after the worker's stop: "
        f"{1000 * total / events:.2f} ms"
    )
    for kind, seconds in sorted(kinds.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"  {kind:40} {1000 * seconds / events:6.2f} ms ({100 * seconds / max(total, 1e-9):4.1f}%)")
    report(found, started, events, args.top)


if __name__ == "__main__":
    main()
