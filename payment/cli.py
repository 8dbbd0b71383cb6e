"""`payment`: run, migrate and seed the service. Every option can also come from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import sentry_sdk

from payment.config import Settings, load_settings
from payment.dburl import redact
from payment.errors import ConfigError, PaymentError

log = logging.getLogger("payment")

# Each command imports what it runs inside its function: `payment --help` or `db:migrate` then starts in about 0.1 s
# instead of the 1.4 s of importing the whole app (tests/test_layering.py still counts these imports for circles).


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc.message}") from None
    return settings.replace(**{k: v for k, v in overrides.items() if v is not None})


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The SDK and httpx log every request at INFO; keep their warnings only.
    for noisy in ("stripe", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


@contextlib.contextmanager
def database(settings: Settings, data_dir: str | None = None) -> Iterator[Settings]:
    """Settings with a DATABASE_URL: the configured one, or an embedded PostgreSQL outside staging/production."""
    if settings.database_url is not None:
        yield settings
        return
    if settings.is_deployed:
        raise click.ClickException(f"DATABASE_URL is required when APP_ENV={settings.app_env}")
    from payment import embedded_pg

    folder = Path(data_dir or settings.data_dir) / "postgres"
    try:
        with embedded_pg.running(folder, database="payment") as (_, url):
            click.echo(f"Embedded PostgreSQL running, data in {folder}", err=True)
            yield settings.replace(database_url=url)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


def _migrate(settings: Settings) -> None:
    from payment import migrate

    assert settings.database_url is not None
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:  # an unreachable database or a failed revision: say which, never the password
        raise click.ClickException(
            f"migration failed on {redact(settings.database_url)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """Aquoris Payment: subscription billing on Stripe for the Aquoris apps."""


@main.command("db:migrate")
@click.option("--data-dir", envvar="DATA_DIR", help="Embedded PostgreSQL folder when DATABASE_URL is unset.")
def db_migrate(data_dir: str | None) -> None:
    """Apply every pending migration (Alembic head, Procrastinate's schema included)."""
    settings = _settings()
    _logging(settings)
    with database(settings, data_dir) as settings:
        _migrate(settings)
    click.echo("Database is up to date.")


@main.command("db:seed")
@click.option("--data-dir", envvar="DATA_DIR", help="Embedded PostgreSQL folder when DATABASE_URL is unset.")
def db_seed(data_dir: str | None) -> None:
    """Create the default admin from ADMIN_EMAIL/ADMIN_PASSWORD (idempotent; never resets a password)."""
    settings = _settings()
    with database(settings, data_dir) as settings:
        result = asyncio.run(_seed_admin(settings))
    state = "created" if result[1] else "already exists (password unchanged)"
    click.echo(f"Admin {result[0]} {state}.")


async def _seed_admin(settings: Settings) -> tuple[str, bool]:
    from payment.audit.chain import chain_key
    from payment.db import Database
    from payment.seed import seed_admin

    assert settings.database_url is not None
    db = Database(settings.database_url, null_pool=True, audit_key=chain_key(settings.audit_chain_secret))
    try:
        async with db.transaction() as session:
            result = await seed_admin(session, settings)
            return result.admin.email, result.created
    except PaymentError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.strerror or exc}") from None
    finally:
        await db.dispose()


@main.command("audit:verify")
@click.option("--data-dir", envvar="DATA_DIR", help="Embedded PostgreSQL folder when DATABASE_URL is unset.")
def audit_verify(data_dir: str | None) -> None:
    """Check the tamper-evident audit chain; exits 1 and names the first changed, deleted or inserted row."""
    settings = _settings()
    with database(settings, data_dir) as settings:
        verdict = asyncio.run(_verify_audit(settings))
    if not verdict.ok:
        for problem in verdict.problems:
            click.echo(f"BROKEN {problem}", err=True)
        raise SystemExit(1)
    click.echo(f"Audit chain intact: {verdict.rows} rows verified.")


async def _verify_audit(settings: Settings) -> Any:
    from payment.audit.chain import chain_key
    from payment.audit.verify import check_and_record
    from payment.db import Database

    assert settings.database_url is not None
    key = chain_key(settings.audit_chain_secret)
    db = Database(settings.database_url, null_pool=True, audit_key=key)
    try:
        return await check_and_record(db, key=key)
    except OSError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.strerror or exc}") from None
    finally:
        await db.dispose()


@main.command()
@click.option("--host", envvar="HOST", default="0.0.0.0", show_default=True)  # noqa: S104 - in a container
@click.option("--port", envvar="PORT", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    envvar="WEB_WORKERS",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Web processes sharing the port (one per core).",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app with uvicorn (graceful shutdown: 30 s grace on SIGTERM)."""
    settings = _settings()
    _logging(settings)
    if settings.database_url is None:
        raise click.ClickException("DATABASE_URL is required for `payment serve` (use `payment dev` locally)")
    if settings.mail_warning:
        log.warning(settings.mail_warning)
    from payment.serving import make_server, run, run_until_signal, serve_processes

    if workers > 1:
        serve_processes(
            "payment.bootstrap:web_app",
            host,
            port,
            workers=workers,
            log_level=settings.log_level,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
        return
    from payment.bootstrap import create_app
    from payment.observability import init_sentry

    init_sentry(settings, component="web")
    server = make_server(
        create_app(settings), host, port, log_level=settings.log_level, forwarded_allow_ips=settings.forwarded_allow_ips
    )
    run(run_until_signal([server]))


# how long a worker's job waits for a pooled database connection (jobs queue for the pool's short transactions)
WORKER_POOL_TIMEOUT_SECONDS = 30
# Jobs a worker runs at once. A Stripe event's job waits for Stripe with no connection held, so the slots bound the
# rate: slots / (its sequential Stripe reads x Stripe's latency + its database time). Measured (worker_events,
# 300 events over 300 objects): 2 reads an event, 1.5 of them one after the other (a subscription: 1; an invoice:
# the invoice, then its payment intent, the subscription beside them), so 225 ms at Stripe's 150 ms; 64 slots then
# cap the worker at 64 / 0.225 s = 284 events/s before any database or CPU wait, under the 300/s it should reach.
# 128 leave room for the waits (128 / 0.3 s = 426/s); a slot costs a task and, in flight, a Stripe connection.
WORKER_CONCURRENCY = 128
# slots per database connection of a worker: a job holds one only for its short transactions (its pre-read
# statement and the apply, ~10-30 ms on a busy host), so at 300 events/s about 9 are busy; DB_POOL_SIZE's 10 would
# queue them, so the pool grows to a connection per 8 slots (16 at 128), DB_POOL_SIZE being the least
WORKER_SLOTS_PER_CONNECTION = 8


@main.command()
@click.option(
    "--concurrency",
    envvar="WORKER_CONCURRENCY",
    default=WORKER_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Jobs run at once.",
)
def worker(concurrency: int) -> None:
    """Run the background job worker (Procrastinate) until SIGTERM; running jobs finish first."""
    settings = _settings()
    _logging(settings)
    if settings.database_url is None:
        raise click.ClickException("DATABASE_URL is required for `payment worker`")
    if settings.mail_warning:
        log.warning(settings.mail_warning)
    from payment.bootstrap import build_services
    from payment.jobs.worker import run_worker
    from payment.observability import init_sentry
    from payment.serving import run, run_until_signal

    init_sentry(settings, component="worker")
    # a job holds no connection while it waits for Stripe (payment/jobs/stripe_events.py), only for its short
    # transactions: a connection per WORKER_SLOTS_PER_CONNECTION slots (at least DB_POOL_SIZE) serves them, and
    # Stripe's connections are kept per slot
    # (a job may wait for one of them longer than a web request would: DB_POOL_TIMEOUT_SECONDS is for requests)
    services = build_services(
        settings.replace(
            stripe_http_pool_size=max(settings.stripe_http_pool_size, concurrency),
            db_pool_size=max(settings.db_pool_size, concurrency // WORKER_SLOTS_PER_CONNECTION),
            db_pool_timeout_seconds=max(settings.db_pool_timeout_seconds, WORKER_POOL_TIMEOUT_SECONDS),
        )
    )

    async def go() -> None:
        async def work() -> None:
            await run_worker(services, concurrency=concurrency)

        try:
            await run_until_signal([], [work])
        finally:
            await services.stripe.aclose()
            await services.db.dispose()

    try:
        run(go())
    except Exception as exc:  # database outages are waited out; this is an error waiting cannot cure
        from payment.stripe.events import describe

        sentry_sdk.capture_exception(exc)  # scrubbed; the log gets the safe description only
        raise click.ClickException(f"the worker gave up: {describe(exc)}") from None


@main.command()
def secret() -> None:
    """Print a fresh random secret for SECRET_KEY (or an admin password): 384 bits, URL-safe."""
    from payment.secrets_policy import new_secret

    click.echo(new_secret())


@main.command()
@click.option("--host", envvar="SANDBOX_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="SANDBOX_PORT", default=12111, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL=WHSEC",
    help="Deliver events to URL signed with the whsec_ secret (repeatable).",
)
@click.option("--state-file", envvar="SANDBOX_STATE_FILE", help="Keep the sandbox's state in this JSON file.")
@click.option(
    "--latency-ms",
    envvar="SANDBOX_LATENCY_MS",
    default=0,
    show_default=True,
    type=click.IntRange(0, 60_000),
    help="Added to every API answer (not to hosted pages), to show Stripe's latency in benchmarks.",
)
def sandbox(host: str, port: int, webhooks: tuple[str, ...], state_file: str | None, latency_ms: int) -> None:
    """Run the offline Stripe sandbox alone (accepts any sk_test_ key)."""
    from payment.devserver import sandbox_factory
    from payment.serving import make_server, run, run_until_signal

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException("the sandbox binds to loopback only (127.0.0.1, localhost or ::1)")
    endpoints = []
    for item in webhooks:
        url, sep, secret = item.partition("=")
        if not sep or not secret.startswith("whsec_"):
            raise click.ClickException(f"--webhook wants URL=whsec_..., got {item!r}")
        endpoints.append((url, secret))
    app = sandbox_factory()(
        base_url=f"http://{host}:{port}", webhook_endpoints=endpoints, state_file=state_file, latency_ms=latency_ms
    )
    # LOG_LEVEL (INFO by default): above INFO, no access line per request (a benchmark's sandbox shares the cores
    # with what it measures, and formatting a line per request was a tenth of its CPU)
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    quiet = level not in ("DEBUG", "INFO")
    uvicorn_level = level.lower() if level in ("WARNING", "ERROR", "CRITICAL") else "warning" if quiet else "info"
    server = make_server(app, host, port, log_level=uvicorn_level, access_log=not quiet)
    latency = f", {latency_ms} ms added to every API answer" if latency_ms else ""
    click.echo(f"Stripe sandbox on http://{host}:{port} (STRIPE_API_BASE){latency}")
    run(run_until_signal([server]))  # on uvloop, as `payment serve`: less CPU per request than asyncio's loop


@main.command()
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PORT", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--data-dir",
    envvar="DATA_DIR",
    default=".data",
    show_default=True,
    help="Folder for the embedded PostgreSQL and the sandbox state.",
)
@click.option("--sandbox-port", envvar="SANDBOX_PORT", default=12111, show_default=True, type=click.IntRange(1, 65535))
def dev(host: str, port: int, data_dir: str, sandbox_port: int) -> None:
    """One-command demo: embedded PostgreSQL, migrations, seeded admin and demo app, Stripe sandbox, web + worker."""
    from payment.devserver import run_dev

    settings = _settings()
    if settings.is_deployed:
        raise click.ClickException("`payment dev` is for development; use `payment serve` in staging/production")
    _logging(settings)
    # The in-process worker logs each periodic job at INFO; in the dev console that buries the banner.
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    with database(settings, data_dir) as settings:
        _migrate(settings)
        run_dev(settings, host=host, port=port, data_dir=data_dir, sandbox_port=sandbox_port)


def run() -> None:  # pragma: no cover - console entry
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("APP_ENV", "development")
    run()
