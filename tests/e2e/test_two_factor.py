"""Two-factor sign-in in Debian's chromium: enrol by reading the secret from the page and computing codes with
pyotp, sign in with a code and with a backup code, be refused a replayed code, refund after a step-up."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Page, expect

from payment.config import Settings
from payment.runtime import Services
from tests.e2e.test_operations_billing import run, sql
from tests.support import factories
from tests.support.app import ThreadServer, serve_service
from tests.support.db import own_database, settings_for

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def settings(pg_server_url: str) -> Iterator[Settings]:
    # step-up asked before every refund, so the test needs no five-minute wait
    with own_database(pg_server_url, f"e2e_two_factor_{os.getpid()}") as url:
        yield settings_for(url, admin_step_up_seconds=0)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[ThreadServer]:
    server = serve_service(settings).start()
    try:
        yield server
    finally:
        server.stop()


def new_admin(settings: Settings) -> str:
    async def work(services: Services) -> str:
        async with services.db.transaction() as session:
            return (await factories.create_admin(session, password=PASSWORD)).email

    return run(settings, work)


def password_step(page: Page, server: ThreadServer, email: str) -> None:
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def code_step(page: Page, code: str) -> None:
    page.locator("#code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.locator("#sign-out-form button").click()
    expect(page.locator("#username")).to_be_visible()


def enrol(page: Page, server: ThreadServer) -> tuple[pyotp.TOTP, list[str]]:
    page.goto(f"{server.url}/admin/two-factor/setup")
    expect(page.locator("#totp-qr svg")).to_be_visible()
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    page.locator("#code").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.locator("#backup-codes li")).to_have_count(10)
    return totp, [code.strip() for code in page.locator("#backup-codes li").all_inner_texts()]


def test_enrol_and_sign_in_with_a_code_a_backup_code_but_not_a_replayed_code(
    page: Page, server: ThreadServer, settings: Settings
) -> None:
    email = new_admin(settings)
    password_step(page, server, email)
    page.wait_for_url(f"{server.url}/admin/")
    totp, backup_codes = enrol(page, server)
    sign_out(page)

    password_step(page, server, email)
    page.wait_for_url(f"{server.url}/admin/two-factor")
    code = totp.at(time.time() + 30)  # the next step: newer than the code that confirmed the enrolment
    code_step(page, code)
    page.wait_for_url(f"{server.url}/admin/")
    sign_out(page)

    password_step(page, server, email)
    code_step(page, code)
    expect(page.locator("#two-factor-error")).to_contain_text("already used")
    assert page.url == f"{server.url}/admin/two-factor"

    code_step(page, backup_codes[3])
    page.wait_for_url(f"{server.url}/admin/")
    expect(page.locator("#sign-out-form")).to_be_visible()
    methods = [
        r["method"]
        for r in sql(
            settings,
            "SELECT details->>'method' AS method FROM audit_log WHERE "
            "action = 'admin.signed_in' AND details->>'email' = :e ORDER BY id",
            e=email,
        )
    ]
    assert methods == ["password", "totp", "backup"]


def test_a_refund_asks_for_a_fresh_code_first(page: Page, server: ThreadServer, settings: Settings) -> None:
    email = new_admin(settings)

    async def invoice(services: Services) -> tuple[int, int]:
        async with services.db.transaction() as session:
            customer = await factories.create_customer(session)
            paid = await factories.create_invoice(session, customer, source="manual", amount_cents=50000)
            return customer.id, paid.id

    customer_id, invoice_id = run(settings, invoice)
    password_step(page, server, email)
    page.wait_for_url(f"{server.url}/admin/")
    totp, _ = enrol(page, server)

    page.goto(f"{server.url}/admin/customer/details/{customer_id}")
    page.locator(f'[data-refund-invoice="{invoice_id}"]').click()
    page.wait_for_url(re.compile(r".*/admin/step-up\?next=.*"))
    expect(page.get_by_text("Confirm it is you")).to_be_visible()
    page.locator("#code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#operation-form")).to_be_visible()
    page.locator("#field-reason").fill("Customer asked by email")
    page.locator("#operation-submit").click()
    expect(page.locator("#operation-summary")).to_be_visible()
    page.locator("#operation-confirm-button").click()
    expect(page.locator(".flash-messages")).to_be_visible()
    refunds = sql(settings, "SELECT amount_cents, status FROM refunds WHERE invoice_id = :i", i=invoice_id)
    assert refunds == [{"amount_cents": 50000, "status": "succeeded"}]
    stepped = sql(
        settings,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'admin.stepped_up' "
        "AND entity_id = (SELECT id::text FROM admin_users WHERE email = :e)",
        e=email,
    )
    assert stepped == [{"n": 1}]
