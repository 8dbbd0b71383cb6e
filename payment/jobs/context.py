"""What a job body gets from the worker: its Services and whether this is its last attempt."""

from __future__ import annotations

from typing import Any

import procrastinate

from payment.runtime import Services


def services_of_job(context: procrastinate.JobContext) -> Services:
    """The worker's Services, handed to every job through the worker's `additional_context` (run_worker)."""
    found: Any = context.additional_context.get("services")
    if found is None:
        raise RuntimeError("jobs need the worker's Services (run them with payment.jobs.worker.run_worker)")
    services: Services = found
    return services


def is_final_attempt(context: procrastinate.JobContext, strategy: procrastinate.RetryStrategy) -> bool:
    """Procrastinate retries while the previous attempts are fewer than `max_attempts`, so that many retries."""
    return strategy.max_attempts is not None and context.job.attempts >= strategy.max_attempts
