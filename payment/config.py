"""Typed settings, read once from environment variables and validated at start.

Every variable here is documented in the README's configuration table and in `.env.example`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from payment.errors import ConfigError
from payment.secrets_policy import password_problem, secret_problem

Environment = Literal["development", "test", "staging", "production"]
ENVIRONMENTS: tuple[Environment, ...] = ("development", "test", "staging", "production")

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"
DEV_STRIPE_SECRET_KEY = "sk_test_aquoris_sandbox"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_aquoris_sandbox_dev_secret"
DEV_ADMIN_EMAIL = "admin@aquoris.local"
DEV_ADMIN_PASSWORD = "aquoris-dev-admin"
# Values published in this repository (.env.example, README, development defaults): never a deployed secret.
KNOWN_SECRET_KEYS = (DEV_SECRET_KEY, "change-me-to-64-random-characters")
KNOWN_WEBHOOK_SECRETS = (DEV_STRIPE_WEBHOOK_SECRET, "whsec_change_me")
KNOWN_ADMIN_PASSWORDS = (DEV_ADMIN_PASSWORD, "change-me")


@dataclass(frozen=True)
class Settings:
    app_env: Environment = "development"
    database_url: str | None = None
    secret_key: str = DEV_SECRET_KEY
    base_url: str = "http://127.0.0.1:8000"
    admin_email: str | None = None
    admin_password: str | None = None
    stripe_secret_key: str = DEV_STRIPE_SECRET_KEY
    stripe_webhook_secret: str = DEV_STRIPE_WEBHOOK_SECRET
    stripe_api_base: str | None = None
    # connections to Stripe kept open per process (the worker has this many reads in flight at most)
    stripe_http_pool_size: int = 64
    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    sentry_release: str | None = None
    login_rate_limit: int = 50
    session_ttl_seconds: int = 3600
    admin_session_max_age: int = 8 * 3600
    admin_session_idle_seconds: int = 3600
    admin_require_2fa: bool = False
    admin_step_up_seconds: int = 300
    audit_chain_key: str | None = None
    max_body_bytes: int = 64 * 1024
    webhook_max_body_bytes: int = 1024 * 1024
    db_pool_size: int = 10
    db_pool_timeout_seconds: int = 3
    # "pgbouncer": DATABASE_URL is a PgBouncer in transaction pooling, so no prepared statement outlives a
    # transaction (asyncpg's and psycopg's statement caches off, one-statement paths wrapped in a transaction)
    database_pooler: str = "none"
    data_dir: str = ".data"
    log_level: str = "INFO"
    # addresses whose X-Forwarded-For/-Proto uvicorn believes: the reverse proxy's, never "*" when deployed
    forwarded_allow_ips: str = "127.0.0.1,::1"
    outgoing_webhook_timeout_seconds: int = 10
    outgoing_webhook_retry_base_ms: int = 5000
    smtp_url: str | None = None
    mail_from: str = "Aquoris Billing <billing@localhost>"
    email_retry_base_ms: int = 30000
    # the drift check against Stripe: when it runs (cron, minute first) and how many Stripe reads it has in flight
    reconciliation_cron: str = "23 3 * * *"
    reconciliation_concurrency: int = 4
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def audit_chain_secret(self) -> str:
        """What keys the audit chain: AUDIT_CHAIN_KEY, else SECRET_KEY (then rotating it breaks old links)."""
        return self.audit_chain_key or self.secret_key

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_deployed(self) -> bool:
        """Staging and production run behind HTTPS with real secrets."""
        return self.app_env in ("staging", "production")

    @property
    def mail_warning(self) -> str | None:
        """Why end users get no email, or None. Production refuses to start without SMTP_URL; staging and a plain
        `payment serve` / `payment worker` in development start, and say so (log, /api/health, the dashboard);
        `payment dev` catches mail itself."""
        if self.smtp_url is not None:
            return None
        return (
            "SMTP_URL is not set: end users' notices (payment failed, access paused, receipts) wait in the outbox "
            "and nobody is emailed until it is set"
        )

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """STRIPE_WEBHOOK_SECRET's signing secrets: one, or several separated by commas while Stripe delivers to two
        endpoints (a move to a new API version); a delivery signed with any of them verifies."""
        return tuple(part.strip() for part in self.stripe_webhook_secret.split(",") if part.strip())

    @property
    def uses_sandbox(self) -> bool:
        return self.stripe_api_base is not None

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def _check_url(name: str, value: str, *, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be a {' or '.join(schemes)} URL, got {value!r}")


def _forwarded_allow_ips(env: Mapping[str, str], *, deployed: bool, problems: list[str]) -> str:
    """The proxies trusted for the client address; every entry must be an address or a network."""
    raw = _str(env, "FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
    entries = [item.strip() for item in raw.split(",") if item.strip()]
    if entries == ["*"]:
        if deployed:
            problems.append(
                "FORWARDED_ALLOW_IPS=* lets any client write its own address into X-Forwarded-For "
                "(sign-in rate limit, audit log); name the reverse proxy's address, e.g. "
                "FORWARDED_ALLOW_IPS=172.31.240.1 for the compose files' network gateway"
            )
        return "*"
    for item in entries:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            problems.append(f"FORWARDED_ALLOW_IPS must list IP addresses or networks, got {item!r}")
    return ",".join(entries)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError with every problem found."""
    env = os.environ if env is None else env
    app_env = (_str(env, "APP_ENV") or "development").lower()
    if app_env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {app_env!r}")
    deployed = app_env in ("staging", "production")
    problems: list[str] = []

    def required_when_deployed(name: str, dev_default: str) -> str:
        value = _str(env, name)
        if value is None:
            if deployed:
                problems.append(f"{name} is required when APP_ENV={app_env}")
            return dev_default
        return value

    secret_key = required_when_deployed("SECRET_KEY", DEV_SECRET_KEY)
    if deployed and len(secret_key) < 32:
        problems.append("SECRET_KEY must be at least 32 characters; generate one with `payment secret`")
    elif deployed and (problem := secret_problem("SECRET_KEY", secret_key, KNOWN_SECRET_KEYS)) is not None:
        problems.append(problem)
    database_url = _str(env, "DATABASE_URL")
    if database_url is None and deployed:
        problems.append(f"DATABASE_URL is required when APP_ENV={app_env}")
    if database_url is not None and urlsplit(database_url).scheme.split("+")[0] not in ("postgresql", "postgres"):
        problems.append("DATABASE_URL must be a postgresql:// URL")
    stripe_secret_key = required_when_deployed("STRIPE_SECRET_KEY", DEV_STRIPE_SECRET_KEY)
    stripe_webhook_secret = required_when_deployed("STRIPE_WEBHOOK_SECRET", DEV_STRIPE_WEBHOOK_SECRET)
    if not stripe_secret_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        problems.append("STRIPE_SECRET_KEY must start with sk_test_ or sk_live_")
    webhook_secrets = [part.strip() for part in stripe_webhook_secret.split(",")]
    if not all(part.startswith("whsec_") for part in webhook_secrets):
        problems.append("STRIPE_WEBHOOK_SECRET must start with whsec_ (each secret, when several are given)")
    elif deployed:
        for part in webhook_secrets:
            if problem := secret_problem("STRIPE_WEBHOOK_SECRET", part, KNOWN_WEBHOOK_SECRETS, prefix="whsec_"):
                problems.append(problem)
    audit_chain_key = _str(env, "AUDIT_CHAIN_KEY")
    if (
        deployed
        and audit_chain_key is not None
        and (problem := secret_problem("AUDIT_CHAIN_KEY", audit_chain_key, KNOWN_SECRET_KEYS)) is not None
    ):
        problems.append(problem)
    admin_password = env.get("ADMIN_PASSWORD") or None
    if (
        deployed
        and admin_password is not None
        and (problem := password_problem("ADMIN_PASSWORD", admin_password, KNOWN_ADMIN_PASSWORDS)) is not None
    ):
        problems.append(problem)
    forwarded_allow_ips = _forwarded_allow_ips(env, deployed=deployed, problems=problems)
    stripe_api_base = _str(env, "STRIPE_API_BASE")
    if app_env == "production":
        if "_test_" in stripe_secret_key:
            problems.append("production refuses a test Stripe key (sk_test_...); use the live key")
        if stripe_api_base is not None:
            problems.append("production talks to Stripe itself: unset STRIPE_API_BASE")
    base_url = (_str(env, "BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
    try:
        _check_url("BASE_URL", base_url, schemes=("http", "https"))
        if stripe_api_base is not None:
            _check_url("STRIPE_API_BASE", stripe_api_base, schemes=("http", "https"))
    except ConfigError as exc:
        problems.append(str(exc))
    if app_env == "production" and not base_url.startswith("https://"):
        problems.append("BASE_URL must be https:// in production")
    try:
        login_rate_limit = _int(env, "LOGIN_RATE_LIMIT", 5 if app_env == "production" else 50)
        session_ttl = _int(env, "BILLING_SESSION_TTL_SECONDS", 3600, minimum=60)
        admin_max_age = _int(env, "ADMIN_SESSION_MAX_AGE", 8 * 3600, minimum=60)
        admin_idle = _int(env, "ADMIN_SESSION_IDLE_TIMEOUT", 3600, minimum=60)
        pool_size = _int(env, "DB_POOL_SIZE", 10)
        stripe_pool = _int(env, "STRIPE_HTTP_POOL_SIZE", 64)
        pool_timeout = _int(env, "DB_POOL_TIMEOUT_SECONDS", 3)
        webhook_timeout = _int(env, "OUTGOING_WEBHOOK_TIMEOUT_SECONDS", 10)
        webhook_retry_base = _int(env, "OUTGOING_WEBHOOK_RETRY_BASE_MS", 5000, minimum=10)
        email_retry_base = _int(env, "EMAIL_RETRY_BASE_MS", 30000, minimum=10)
        step_up_seconds = _int(env, "ADMIN_STEP_UP_SECONDS", 300, minimum=0)
        reconciliation_concurrency = _int(env, "RECONCILIATION_CONCURRENCY", 4)
        reconciliation_cron = _str(env, "RECONCILIATION_CRON") or "23 3 * * *"
        if len(reconciliation_cron.split()) not in (5, 6):
            raise ConfigError("RECONCILIATION_CRON must be a cron expression of 5 fields (or 6, seconds last)")
        pooler = (_str(env, "DATABASE_POOLER") or "none").lower()
        if pooler not in ("none", "pgbouncer"):
            raise ConfigError("DATABASE_POOLER must be none or pgbouncer (transaction pooling)")
    except ConfigError as exc:
        raise ConfigError("; ".join([*problems, str(exc)])) from None
    smtp_url = _str(env, "SMTP_URL")
    if smtp_url is not None and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
        problems.append("SMTP_URL must start with smtp:// (STARTTLS) or smtps:// (TLS)")
    if smtp_url is None and app_env == "production":
        # a failed payment nobody is told about costs the subscription: production does not run mute
        problems.append(
            "SMTP_URL is required in production: end users are emailed when a payment fails and for receipts "
            "(smtp://user:password@smtp.example.com:587)"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(
        app_env=app_env,
        database_url=database_url,
        secret_key=secret_key,
        base_url=base_url,
        admin_email=_str(env, "ADMIN_EMAIL"),
        admin_password=admin_password,
        stripe_secret_key=stripe_secret_key,
        stripe_webhook_secret=stripe_webhook_secret,
        stripe_api_base=stripe_api_base.rstrip("/") if stripe_api_base else None,
        stripe_http_pool_size=stripe_pool,
        sentry_dsn=_str(env, "SENTRY_DSN"),
        sentry_environment=_str(env, "SENTRY_ENVIRONMENT") or app_env,
        sentry_release=_str(env, "SENTRY_RELEASE"),
        login_rate_limit=login_rate_limit,
        session_ttl_seconds=session_ttl,
        admin_session_max_age=admin_max_age,
        admin_session_idle_seconds=admin_idle,
        admin_require_2fa=(_str(env, "ADMIN_REQUIRE_2FA") or ("true" if app_env == "production" else "false")).lower()
        in ("1", "true", "yes"),
        admin_step_up_seconds=step_up_seconds,
        audit_chain_key=audit_chain_key,
        db_pool_size=pool_size,
        db_pool_timeout_seconds=pool_timeout,
        data_dir=_str(env, "DATA_DIR") or ".data",
        log_level=(_str(env, "LOG_LEVEL") or "INFO").upper(),
        forwarded_allow_ips=forwarded_allow_ips,
        database_pooler=pooler,
        outgoing_webhook_timeout_seconds=webhook_timeout,
        outgoing_webhook_retry_base_ms=webhook_retry_base,
        smtp_url=smtp_url,
        mail_from=_str(env, "MAIL_FROM") or "Aquoris Billing <billing@localhost>",
        email_retry_base_ms=email_retry_base,
        reconciliation_cron=reconciliation_cron,
        reconciliation_concurrency=reconciliation_concurrency,
    )
