"""`payment dev`: seed, start the Stripe sandbox, the web app and an in-process worker, print how to use them."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from pathlib import Path

import click
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from payment.bootstrap import build_services, create_app
from payment.config import Settings
from payment.dunning.devmail import start_catcher
from payment.jobs.worker import run_worker
from payment.payments.service import format_money
from payment.seed import (
    DEMO_CODE_PERCENT,
    DEMO_PLANS,
    DEMO_RETURN_PATH,
    DemoData,
    admin_credentials,
    seed_admin,
    seed_demo,
)
from payment.serving import QuietServer, make_server, run_until_signal


def sandbox_factory() -> Callable[..., ASGIApp]:
    """The offline Stripe emulator's app factory, or a clear error when it is not installed.

    A legitimate optional import, not a circle being dodged: `stripe_sandbox` is a development/test package that the
    production image leaves out, so only the dev commands (`payment dev`, `payment sandbox`) reach for it.
    """
    try:
        from stripe_sandbox import create_sandbox_app
    except ModuleNotFoundError as exc:
        if exc.name != "stripe_sandbox":
            raise
        raise click.ClickException(
            "the offline Stripe sandbox (package stripe_sandbox) is not installed: it comes with the development "
            "install (scripts/dev) and is not part of the production image; set STRIPE_API_BASE to use another "
            "Stripe endpoint"
        ) from None
    return create_sandbox_app


DEV_SMTP_PORT = 8025


def run_dev(settings: Settings, *, host: str, port: int, data_dir: str, sandbox_port: int) -> None:
    asyncio.run(_run(settings, host=host, port=port, data_dir=data_dir, sandbox_port=sandbox_port))


async def _run(settings: Settings, *, host: str, port: int, data_dir: str, sandbox_port: int) -> None:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base_url = settings.base_url if settings.base_url != "http://127.0.0.1:8000" else f"http://{shown_host}:{port}"
    servers: list[QuietServer] = []
    if settings.stripe_api_base is None:
        create_sandbox_app = sandbox_factory()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        webhook = (f"http://127.0.0.1:{port}/api/v1/webhooks/stripe", settings.webhook_secrets[0])
        state_file = Path(data_dir) / "stripe-sandbox.json"
        sandbox_app = create_sandbox_app(base_url=sandbox_url, webhook_endpoints=[webhook], state_file=str(state_file))
        servers.append(make_server(sandbox_app, "127.0.0.1", sandbox_port, log_level="warning", access_log=False))
        settings = settings.replace(stripe_api_base=sandbox_url)
    catcher = None
    if settings.smtp_url is None:
        # every end-user email is caught on loopback; the admin's Outbox page shows each one rendered
        catcher, _ = start_catcher(DEV_SMTP_PORT)
        settings = settings.replace(smtp_url=f"smtp://127.0.0.1:{catcher.port}")
    settings = settings.replace(base_url=base_url)
    services = build_services(settings)
    web_app = create_app(services=services)
    add_demo_pages(web_app)
    web = make_server(
        web_app, host, port, log_level=settings.log_level, forwarded_allow_ips=settings.forwarded_allow_ips
    )
    servers.insert(0, web)

    demo: list[DemoData] = []

    async def seed_when_up() -> None:
        # The demo price lives in the sandbox, so seeding waits for it to listen.
        async with services.db.transaction() as session:
            admin = await seed_admin(session, settings)
        demo.append(await seed_demo(services.db, settings, services.stripe))
        _banner(settings, admin.created, demo[0])

    # The worker gets its own pool and job app: the web app's lifespan closes its own at shutdown.
    worker_services = build_services(settings)

    async def worker() -> None:
        await run_worker(worker_services, concurrency=2)

    async def seeder() -> None:
        while not all(s.started for s in servers):
            await asyncio.sleep(0.05)
        await seed_when_up()
        await asyncio.Event().wait()  # stay alive with the other tasks

    try:
        await run_until_signal(servers, [worker, seeder])
    finally:
        await services.stripe.aclose()
        await worker_services.stripe.aclose()
        await services.db.dispose()
        await worker_services.db.dispose()
        if catcher is not None:
            catcher.stop()


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vega (demo app)</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1e293b}</style>
</head><body><h1>Vega</h1>
<p>You are back in the demo app. In a real app this is the page its return URL names (here the settings page),
where the user manages their plan.</p>
<p>This page exists only under <code>payment dev</code>; set the app's return URL in Admin &rarr; Apps.</p>
</body></html>
"""


async def _demo_return_page(request: Request) -> Response:
    return HTMLResponse(DEMO_PAGE)


def add_demo_pages(app: Starlette) -> None:
    """The demo app's stand-in page, so "Back to Vega" on the billing page lands somewhere in development."""
    app.router.routes.append(Route(DEMO_RETURN_PATH, _demo_return_page, methods=["GET"]))


def _plans_line() -> str:
    """free, pro (THB 299.00/month), ...: what the demo app sells."""
    paid = [
        f"{p.slug} ({format_money(p.price_cents, 'thb')}/{p.interval}"
        + (f", {p.trial_days}-day trial)" if p.trial_days else ")")
        for p in DEMO_PLANS
    ]
    return ", ".join(["free", *paid])


def _banner(settings: Settings, admin_created: bool, demo: DemoData) -> None:
    email, password = admin_credentials(settings)
    curl = (
        f"curl -sS -X POST {settings.base_url}/api/v1/sessions \\\n"
        f"    -H {shlex.quote('Authorization: Bearer ' + demo.api_key)} \\\n"
        f"    -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"externalUserId":"test-user","appSlug":"{demo.app_slug}"}}\''
    )
    note = "" if admin_created else " (existing admin: password unchanged by the seed)"
    click.echo(
        "\n"
        "  Aquoris Payment is running (development); both servers are up:\n"
        f"  Web app:        {settings.base_url}  (admin, API, billing pages, webhooks; its access log follows)\n"
        f"  Stripe sandbox: {settings.stripe_api_base}  (fake Stripe: API, Checkout and portal pages; quiet)\n\n"
        f"  Admin:          {settings.base_url}/admin/login\n"
        f"  Admin login:    {email} / {password}{note}\n"
        f"  Health:         {settings.base_url}/api/health\n"
        "  Test card:      4242 4242 4242 4242\n"
        f"  Demo app:       {demo.app_slug}  API key: {demo.api_key}\n"
        f"  Its return URL: {settings.base_url}{DEMO_RETURN_PATH}  (a stand-in page served here)\n"
        f"  Plans:          {_plans_line()}\n"
        f"  Promotion code: {demo.promotion_code}  ({DEMO_CODE_PERCENT}% off the first payment, Vega's plans)\n"
        f"  Emails:         sent to {settings.smtp_url}; see {settings.base_url}/admin/outbox\n\n"
        f"  Open a billing session:\n    {curl}\n\n"
        "  Stop with Ctrl+C.\n"
    )
