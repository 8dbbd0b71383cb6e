"""Running the Procrastinate worker (in `payment worker`, or in-process under `payment dev`)."""

from __future__ import annotations

from payment.runtime import Services

GRACEFUL_SECONDS = 25.0


async def run_worker(services: Services, *, concurrency: int = 4) -> None:
    """Process jobs until cancelled; on cancel, running jobs finish (within the grace) before returning."""
    async with services.jobs.open_async():
        await services.jobs.run_worker_async(
            concurrency=concurrency,
            install_signal_handlers=False,
            shutdown_graceful_timeout=GRACEFUL_SECONDS,
            stalled_worker_timeout=30.0,
            update_heartbeat_interval=5.0,
        )
