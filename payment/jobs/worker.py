"""Running the Procrastinate worker (in `payment worker`, or in-process under `payment dev`)."""

from __future__ import annotations

from typing import Any

import procrastinate
import sentry_sdk

from payment.jobs.tasks import STALLED_AFTER_SECONDS
from payment.runtime import Services
from payment.stripe.events import describe

GRACEFUL_SECONDS = 25.0
HEARTBEAT_SECONDS = 5.0


class JobFailed(Exception):
    """What Procrastinate logs of a failed job: the safe description, not the raw error (SQL, parameters)."""


async def report_final_failures(call_next: Any, context: procrastinate.JobContext, worker: Any) -> Any:
    """A job failing for good (no retry left) reaches Sentry (scrubbed by observability; a no-op when Sentry is
    not configured); the worker's own log only gets the safe description."""
    try:
        return await call_next()
    except procrastinate.exceptions.JobAborted:
        raise
    except Exception as exc:
        strategy = context.task.retry_strategy if context.task else None
        if strategy is None or strategy.get_retry_exception(exc, context.job) is None:
            sentry_sdk.capture_exception(exc)
        raise JobFailed(describe(exc)) from None


async def run_worker(services: Services, *, concurrency: int = 4) -> None:
    """Process jobs until cancelled; on cancel, running jobs finish (within the grace) before returning."""
    async with services.jobs.open_async():
        await services.jobs.run_worker_async(
            concurrency=concurrency,
            install_signal_handlers=False,
            shutdown_graceful_timeout=GRACEFUL_SECONDS,
            # a worker silent for this long is dead: its running jobs are retried (recover_stalled_jobs)
            stalled_worker_timeout=STALLED_AFTER_SECONDS,
            update_heartbeat_interval=HEARTBEAT_SECONDS,
            additional_context={"services": services},
            worker_middleware=[report_final_failures],
            delete_jobs="successful",
        )
