"""A full browser walk against `payment serve` and `payment worker` as operators run them, then every line they
logged is searched for the walk's tokens, keys and passwords: none may appear (billing paths read
/billing/<redacted>)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys

import httpx
from playwright.sync_api import Browser, expect

from payment.embedded_pg import free_port
from tests.ops.processes import process_env, started
from tests.support import factories
from tests.support.app import running_services
from tests.support.db import in_thread, own_database, settings_for
from tests.support.stripe import register_webhook, stripe_price

ADMIN_PASSWORD = "walk-admin-" + secrets.token_hex(8)
NEW_PASSWORD = "walk-new-" + secrets.token_hex(8)
SECRET_KEY = "walk-secret-key-" + secrets.token_hex(24)


async def _seed(url: str, sandbox_url: str) -> str:
    async with running_services(settings_for(url, stripe_api_base=sandbox_url)) as services:
        price = await stripe_price(services.stripe, name="Aquoris PRO", amount=29900)
        async with services.db.transaction() as session:
            admin = await factories.create_admin(session, password=ADMIN_PASSWORD)
            await factories.create_plan(
                session, slug="pro", name="Aquoris PRO", price_cents=29900, stripe_price_id=price
            )
            return admin.email


def test_no_token_key_or_password_reaches_the_logs_of_a_browser_walk(
    browser: Browser, pg_server_url: str, sandbox: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with own_database(pg_server_url, f"log_hygiene_{os.getpid()}") as url:
        email = in_thread(asyncio.run, _seed(url, sandbox))
        webhook_secret = register_webhook(sandbox, f"{base}/api/v1/webhooks/stripe")
        env = process_env(
            url, STRIPE_API_BASE=sandbox, SECRET_KEY=SECRET_KEY, BASE_URL=base, STRIPE_WEBHOOK_SECRET=webhook_secret
        )
        serve = [sys.executable, "-m", "payment.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        with started(serve, env) as web, started([sys.executable, "-m", "payment.cli", "worker"], env) as worker:
            web.wait_for_http(f"{base}/api/health")
            context = browser.new_context()
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            page = context.new_page()
            # the admin: sign in, create an app and copy its key
            page.goto(f"{base}/admin/login")
            page.locator("#username").fill(email)
            page.locator("#password").fill(ADMIN_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/admin/")
            page.goto(f"{base}/admin/app/create")
            for name, value in {"slug": "vega", "name": "Vega", "return_url": "https://vega.test/settings"}.items():
                page.locator(f"#{name}").fill(value)
            page.locator('input[type="submit"][value="Save"]').click()
            page.wait_for_url("**/admin/app/list")
            row = page.locator("tr", has=page.locator('code[data-app-slug="vega"]'))
            row.get_by_role("button", name="Copy key").click()
            expect(row.get_by_role("button", name="Copied")).to_be_visible()
            api_key = str(page.evaluate("navigator.clipboard.readText()"))
            assert api_key.startswith("apk_")
            # the client app opens a billing link; the user subscribes through Checkout
            opened = httpx.post(
                f"{base}/api/v1/sessions",
                headers={"Authorization": f"Bearer {api_key}"},
                json={"externalUserId": "walker", "appSlug": "vega"},
                timeout=30,
            )
            assert opened.status_code == 201, opened.text
            billing_url = opened.json()["url"]
            token = billing_url.rstrip("/").rsplit("/", 1)[-1]
            page.goto(billing_url)
            page.get_by_role("button", name="Subscribe to Aquoris PRO").click()
            page.wait_for_url(f"{sandbox}/**")
            page.goto(f"{billing_url}/status")
            page.goto(billing_url)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            # the admin changes their password, then signs out
            page.goto(f"{base}/admin/admin-user/list")
            page.locator("tr", has_text=email).get_by_role("link", name="Change password").click()
            page.locator("#password").fill(NEW_PASSWORD)
            page.locator("#confirm").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Change password").click()
            page.wait_for_url("**/admin/admin-user/list")
            cookies = [c["value"] for c in context.cookies()]
            page.locator("#sign-out-form button").click()
            page.wait_for_url("**/admin/login")
            context.close()
            for process in (web, worker):
                process.popen.send_signal(signal.SIGTERM)
                process.popen.wait(40)
            logs = web.output() + worker.output()

    assert "/billing/<redacted>" in logs
    leaked = {
        name: value
        for name, value in {
            "billing token": token,
            "API key": api_key[4:],
            "admin password": ADMIN_PASSWORD,
            "new password": NEW_PASSWORD,
            "SECRET_KEY": SECRET_KEY,
            "webhook secret": webhook_secret[6:],
            **{f"cookie {n}": c for n, c in enumerate(cookies)},
        }.items()
        if value in logs
    }
    assert leaked == {}, f"found in the logs: {sorted(leaked)}"
