"""Running the Procrastinate worker (in `payment worker`, or in-process under `payment dev`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import procrastinate
import sentry_sdk

from payment.jobs.tasks import STALLED_AFTER_SECONDS
from payment.outage import is_outage
from payment.runtime import Services
from payment.stripe.events import describe

log = logging.getLogger(__name__)

GRACEFUL_SECONDS = 25.0
HEARTBEAT_SECONDS = 5.0
# After a database outage the worker starts again after 1, 2, 4 ... 30 s, for as long as the outage lasts.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
# A run this long was healthy: the next outage starts the back-off from the beginning.
HEALTHY_RUN_SECONDS = 60.0
# Slots served by one fetch loop. Procrastinate's worker fetches one job per round trip, one fetch at a time, and
# each fetch waits its turn on a busy event loop: one loop for 128 slots handed out about 113 jobs/s while only 16-80
# slots were busy (benchmarks/worker_events.py). A process runs one loop per this many slots, fetching side by side.
SLOTS_PER_FETCH_LOOP = 32


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
    """Process jobs until cancelled; on cancel, running jobs finish (within the grace) before returning.

    A database outage of any length does not end it: Procrastinate stops (or raises) when its connection goes away,
    and the worker starts again with a growing pause until PostgreSQL answers. Any other error is raised: the worker
    gives up, and `payment worker` exits non-zero."""
    delay = RESTART_FIRST_SECONDS
    while True:
        began = time.monotonic()
        try:
            await _run_once(services, concurrency)
            why = "stopped on its own (its database connection went away)"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_outage(exc):
                raise
            why = f"lost the database: {describe(exc)}"
        if (task := asyncio.current_task()) is not None and task.cancelling():
            return  # asked to stop while it was stopping anyway
        if time.monotonic() - began > HEALTHY_RUN_SECONDS:
            delay = RESTART_FIRST_SECONDS
        log.warning("the worker %s; starting it again in %.0f s", why, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)


def fetch_loop_slots(concurrency: int) -> list[int]:
    """The slots of each fetch loop: `concurrency` split as evenly as it goes, SLOTS_PER_FETCH_LOOP at most each."""
    loops = math.ceil(concurrency / SLOTS_PER_FETCH_LOOP)
    each, rest = divmod(concurrency, loops)
    return [each + 1] * rest + [each] * (loops - rest)


async def _run_once(services: Services, concurrency: int) -> None:
    """Procrastinate workers side by side on one app (each its own fetch loop, heartbeat and listener); when one
    stops, on its own or with an error, the others stop too (running jobs finish within the grace), and the
    first error is raised."""
    async with services.jobs.open_async():
        loops = [
            asyncio.create_task(
                services.jobs.run_worker_async(
                    name=f"worker-{n}",
                    concurrency=slots,
                    install_signal_handlers=False,
                    shutdown_graceful_timeout=GRACEFUL_SECONDS,
                    # a worker silent for this long is dead: its running jobs are retried (recover_stalled_jobs)
                    stalled_worker_timeout=STALLED_AFTER_SECONDS,
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    additional_context={"services": services},
                    worker_middleware=[report_final_failures],
                    delete_jobs="successful",
                ),
                name=f"procrastinate worker-{n}",
            )
            for n, slots in enumerate(fetch_loop_slots(concurrency))
        ]
        try:
            await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for loop in loops:
                loop.cancel()  # a worker cancelled stops gracefully; a finished one is left as it is
            ended = await asyncio.gather(*loops, return_exceptions=True)
        for result in ended:
            if isinstance(result, Exception):
                raise result
