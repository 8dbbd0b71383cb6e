"""Sentry for web, worker and jobs; off when SENTRY_DSN is unset."""

from __future__ import annotations

from payment.config import Settings


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start Sentry if configured; returns whether it is on."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        send_default_pii=False,
        server_name=component,
    )
    return True
