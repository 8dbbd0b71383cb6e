"""What a running process holds: settings, the database, the Stripe gateway and the job queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from payment.app_webhooks import capture
from payment.audit.chain import chain_key
from payment.config import Settings
from payment.db import Database
from payment.dunning import capture as dunning
from payment.stripe.gateway import StripeGateway

if TYPE_CHECKING:
    import procrastinate
    from starlette.requests import HTTPConnection


@dataclass
class Services:
    settings: Settings
    db: Database
    stripe: StripeGateway
    jobs: procrastinate.App


def build_services(settings: Settings, *, null_pool: bool = False) -> Services:
    from payment.jobs.app import create_job_app

    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set (the CLI starts the embedded PostgreSQL and sets it)")
    db = Database(settings.database_url, pool_size=settings.db_pool_size, null_pool=null_pool,
                  pool_timeout=settings.db_pool_timeout_seconds, audit_key=chain_key(settings.audit_chain_secret),
                  behind_pgbouncer=settings.database_pooler == "pgbouncer")
    # every transaction's subscription, invoice, refund and customer changes become client apps' webhooks
    capture.install()
    dunning.install()
    # dunning first: a case it opens is part of the entitlement the webhook capture then announces
    db.before_commit.append(dunning.record_changes)
    db.before_commit.append(capture.record_changes)
    return Services(settings=settings, db=db, stripe=StripeGateway(settings), jobs=create_job_app(settings))


def services_of(conn: HTTPConnection) -> Services:
    """The Services of the app serving this request."""
    return cast(Services, cast(Any, conn.app).state.services)
