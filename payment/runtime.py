"""What a running process holds: settings, the database, the Stripe gateway and the job queue.

payment/bootstrap.py builds it; adapters reach it from a request (`services_of`) or a job's context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import procrastinate

from payment.config import Settings
from payment.db import Database
from payment.stripe.gateway import StripeGateway

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection


@dataclass
class Services:
    settings: Settings
    db: Database
    stripe: StripeGateway
    jobs: procrastinate.App


def services_of(conn: HTTPConnection) -> Services:
    """The Services of the app serving this request."""
    return cast(Services, cast(Any, conn.app).state.services)
