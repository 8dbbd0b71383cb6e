"""Reconciliation in Debian's chromium: drift of each kind made in the sandbox with the webhooks dropped, the check
run as the job runs it, every drift fixed from the Reconciliation screen (or ignored with a reason), then the rows,
the audit log, the dashboard's count and a second check that finds nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from payment.config import Settings
from payment.reconciliation.check import run_check
from payment.runtime import Services
from tests.integration.reconciliation.drifts import Drifted, make_drifts
from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for
from tests.support.stripe import World, sandbox_control

T = TypeVar("T")
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def settings(pg_server_url: str, sandbox_server: ThreadServer) -> Iterator[Settings]:
    name = f"e2e_reconciliation_{os.getpid()}"
    with own_database(pg_server_url, name) as url:
        in_thread(sandbox_control, sandbox_server.url, "POST", "reset")
        yield settings_for(url, stripe_api_base=sandbox_server.url)


def run(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        async with running_services(settings) as services:
            return await work(services)

    return in_thread(asyncio.run, main())


def sql(settings: Settings, query: str, **params: Any) -> list[dict[str, Any]]:
    async def work(services: Services) -> list[dict[str, Any]]:
        async with services.db.session() as session:
            return [dict(r._mapping) for r in await session.execute(text(query), params)]

    return run(settings, work)


@pytest.fixture(scope="module")
def admin(settings: Settings) -> tuple[int, str]:
    async def work(services: Services) -> tuple[int, str]:
        async with services.db.transaction() as session:
            created = await factories.create_admin(session, password=PASSWORD)
            return created.id, created.email

    return run(settings, work)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[ThreadServer]:
    server = serve_service(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin_page(page: Page, server: ThreadServer, admin: tuple[int, str]) -> Page:
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(admin[1])
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")
    return page


def check(settings: Settings) -> None:
    """The job's body: the check over every linked customer, against the sandbox over HTTP."""
    run(settings, lambda services: run_check(services.db, services.stripe))


def fix(page: Page, server: ThreadServer, object_id: str, opener: str, reason: str | None = None) -> None:
    page.goto(f"{server.url}/admin/reconciliation")
    row = page.locator(f'tr[data-object="{object_id}"]')
    expect(row).to_be_visible()
    row.locator(opener).click()
    expect(page.locator("#operation-form")).to_be_visible()
    if reason is not None:
        page.locator("#field-reason").fill(reason)
    page.locator("#operation-submit").click()
    expect(page.locator("#operation-summary")).to_be_visible()
    page.locator("#operation-confirm-button").click()
    expect(page.locator(".flash-messages")).to_be_visible()
    expect(page.locator(f'tr[data-object="{object_id}"]')).to_have_count(0)


def test_every_kind_of_drift_is_shown_and_fixed_from_the_admin(
    admin_page: Page, server: ThreadServer, settings: Settings, sandbox_server: ThreadServer, admin: tuple[int, str]
) -> None:
    page = admin_page
    drifted: Drifted = run(settings, lambda services: make_drifts(World(services, sandbox_server.url)))
    check(settings)

    page.goto(f"{server.url}/admin/")
    expect(page.locator("#open-drifts")).to_have_attribute("data-open-drifts", "4")
    page.goto(f"{server.url}/admin/reconciliation")
    rows = page.locator("#drifts tbody tr[data-drift-id]")
    expect(rows).to_have_count(4)
    canceled = page.locator(f'tr[data-object="{drifted.stripe_ids["subscription_differs"]}"]')
    expect(canceled.locator(".drift-ours")).to_contain_text("active")
    expect(canceled.locator(".drift-theirs")).to_contain_text("canceled")
    expect(canceled).to_contain_text("customer.subscription.deleted")
    page.locator("#filter-kind").select_option("refund_missing")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-object", drifted.stripe_ids["refund_missing"])

    for kind in ("subscription_differs", "subscription_missing", "refund_missing"):
        fix(page, server, drifted.stripe_ids[kind], "[data-take-stripes]")
    fix(page, server, drifted.stripe_ids["invoice_differs"], "[data-ignore]", reason="Written off with the accountant")

    page.goto(f"{server.url}/admin/reconciliation")
    expect(page.locator("#no-drifts")).to_be_visible()
    page.locator("#filter-state").select_option("ignored")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#drifts")).to_contain_text("Written off with the accountant")

    states = sql(settings, "SELECT kind, state, resolved_by FROM reconciliation_drifts ORDER BY id")
    assert {r["kind"]: r["state"] for r in states} == {
        "subscription_differs": "fixed",
        "subscription_missing": "fixed",
        "refund_missing": "fixed",
        "invoice_differs": "ignored",
    }
    assert {r["resolved_by"] for r in states} == {f"admin:{admin[0]}"}
    audit = sql(
        settings,
        "SELECT action, details->>'kind' AS kind FROM audit_log WHERE action LIKE 'reconciliation.%' "
        "AND actor = :actor ORDER BY id",
        actor=f"admin:{admin[0]}",
    )
    assert [(a["action"], a["kind"]) for a in audit] == [
        ("reconciliation.take_stripes", "subscription_differs"),
        ("reconciliation.take_stripes", "subscription_missing"),
        ("reconciliation.take_stripes", "refund_missing"),
        ("reconciliation.ignored", "invoice_differs"),
    ]
    ours = sql(
        settings,
        "SELECT stripe_subscription_id AS id, status, customer_id FROM subscriptions "
        "WHERE stripe_subscription_id IN (:a, :b)",
        a=drifted.stripe_ids["subscription_differs"],
        b=drifted.stripe_ids["subscription_missing"],
    )
    assert {r["id"]: r["status"] for r in ours} == {
        drifted.stripe_ids["subscription_differs"]: "canceled",
        drifted.stripe_ids["subscription_missing"]: "active",
    }
    refund = sql(
        settings,
        "SELECT amount_cents, status FROM refunds WHERE stripe_refund_id = :r",
        r=drifted.stripe_ids["refund_missing"],
    )
    assert refund == [{"amount_cents": 29900, "status": "succeeded"}]

    page.goto(f"{server.url}/admin/reconciliation")
    page.locator("#run-check").click()
    expect(page.locator(".flash-messages")).to_contain_text("check")
    queued = sql(
        settings,
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = :t AND status = 'todo'",
        t="payment:reconcile_with_stripe_now",
    )
    assert queued == [{"n": 1}]

    check(settings)  # what the queued job does
    assert sql(settings, "SELECT count(*) AS n FROM reconciliation_drifts WHERE state = 'open'") == [{"n": 0}]
    page.goto(f"{server.url}/admin/")
    expect(page.locator("#open-drifts")).to_have_attribute("data-open-drifts", "0")
