"""The service's real processes with a few test-only routes and tasks, for shutdown and Sentry tests.

    python -m tests.ops.service_process web PORT     # create_app + make_server + run_until_signal (as `payment serve`)
    python -m tests.ops.service_process worker       # run_worker under run_until_signal (as `payment worker`)

Configuration comes from the environment exactly as for the CLI (load_settings, init_sentry). The extras exist only
here: `/_ops/slow?seconds=N` (a request that takes a while), `/billing/{token}/explode` (an unhandled error carrying
secrets), `/billing/{token}/throws` (a page whose script throws, for browser error reports), and the tasks
`ops_test.slow` and `ops_test.explode`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from payment.bootstrap import build_services
from payment.config import load_settings
from payment.observability import init_sentry
from payment.runtime import Services, services_of
from payment.serving import make_server, run_until_signal


async def slow(request: Request) -> PlainTextResponse:
    print("slow request started", flush=True)  # the test signals only once the request is in the app
    await asyncio.sleep(float(request.query_params.get("seconds", "2")))
    return PlainTextResponse("slow done")


async def explode(request: Request) -> PlainTextResponse:
    settings = services_of(request).settings  # a local whose repr holds every secret
    api_key = request.headers.get("authorization", "")
    card = request.query_params.get("card", "")
    raise RuntimeError(
        f"charge failed for card {card} with {api_key} on {settings.database_url} "
        f"({settings.stripe_secret_key}, {settings.stripe_webhook_secret}, {settings!r})"
    )


THROWING_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>throws</title>
<script src="/api/client-errors.js"></script></head><body><p id="ready">ready</p>
<script src="/_ops/throw.js"></script></body></html>"""

# an uncaught error and an unhandled rejection, both carrying secrets the scrubber must take out
THROW_JS = """
Promise.reject(new Error("browser rejection with card 4242 4242 4242 4242"));
throw new TypeError("browser boom password=" + new URLSearchParams(location.search).get("password")
                    + " key " + new URLSearchParams(location.search).get("key"));
"""


async def throwing_page(request: Request) -> Response:
    return HTMLResponse(THROWING_PAGE)


async def throw_js(request: Request) -> Response:
    return Response(THROW_JS, media_type="text/javascript")


def add_test_tasks(services: Services) -> None:
    settings = services.settings

    @services.jobs.task(name="ops_test.slow", queue="ops_test")
    async def slow_task(seconds: float, marker: str) -> None:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(Path(marker).write_text, "done")

    @services.jobs.task(name="ops_test.explode", queue="ops_test")
    async def explode_task(api_key: str, card: str) -> None:
        raise RuntimeError(
            f"job failed for card {card} with {api_key} on {settings.database_url} "
            f"({settings.stripe_secret_key}, {settings!r})"
        )


def web(port: int) -> None:
    from payment.bootstrap import create_app

    settings = load_settings()
    init_sentry(settings, component="web")
    app = create_app(settings)
    app.router.routes[0:0] = [
        Route("/_ops/slow", slow),
        Route("/billing/{token}/explode", explode),
        Route("/billing/{token}/throws", throwing_page),
        Route("/_ops/throw.js", throw_js),
    ]
    server = make_server(app, "127.0.0.1", port, log_level="info")
    asyncio.run(run_until_signal([server], on_started=lambda: print("READY", flush=True)))


def worker() -> None:
    from payment.jobs.worker import run_worker

    settings = load_settings()
    init_sentry(settings, component="worker")
    services = build_services(settings)
    add_test_tasks(services)

    async def go() -> None:
        async def work() -> None:
            await run_worker(services, concurrency=2)

        try:
            await run_until_signal([], [work], on_started=lambda: print("READY", flush=True))
        finally:
            await services.db.dispose()

    asyncio.run(go())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if sys.argv[1] == "web":
        web(int(sys.argv[2]))
    else:
        worker()
