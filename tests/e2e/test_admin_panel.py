"""The admin panel in a real browser: sign in, apps and their keys, plans, the guide's limits, the subscriptions list
with infinite scroll, and the audit log showing all of it. Tests run in file order on one database; the last one
checks the audit trail the others left."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from payment.apps import service as apps
from payment.errors import Unauthorized
from tests.support import factories
from tests.support.app import ThreadServer, running_services, serve_service
from tests.support.db import in_thread, own_database, settings_for

T = TypeVar("T")
ADMIN_PASSWORD = "browser-admin-pass"
ACTIVE, PAST_DUE = 120, 30


async def _seed(url: str) -> str:
    async with running_services(settings_for(url)) as services, services.db.transaction() as session:
        admin = await factories.create_admin(session, password=ADMIN_PASSWORD)
        plan = await factories.create_plan(session, slug="seed-plan", name="Seed plan")
        for n in range(ACTIVE + PAST_DUE):
            customer = await factories.create_customer(session)
            await factories.create_subscription(session, customer, plan, status="active" if n < ACTIVE else "past_due")
        return admin.email


async def _check_key(url: str, key: str) -> str | None:
    """The slug of the app this key opens, or None when it is refused."""
    async with running_services(settings_for(url)) as services, services.db.session() as session:
        try:
            return (await apps.authenticate_key(session, key)).slug
        except Unauthorized:
            return None


@pytest.fixture(scope="module")
def seeded_database(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """A migrated database of its own with an admin and 150 subscriptions: (url, admin email)."""
    name = f"e2e_admin_panel_{os.getpid()}"
    with own_database(pg_server_url, name) as url:
        yield url, in_thread(asyncio.run, _seed(url))


@pytest.fixture(scope="module")
def server(seeded_database: tuple[str, str], sandbox_server: ThreadServer) -> Iterator[ThreadServer]:
    server = serve_service(settings_for(seeded_database[0], stripe_api_base=sandbox_server.url)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def signed_in_state(
    browser: Browser, server: ThreadServer, seeded_database: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Cookies of one sign-in, reused by the tests that start signed in (bcrypt is slow on purpose)."""
    context = browser.new_context()
    try:
        sign_in(context.new_page(), server, seeded_database[1])
        path = str(tmp_path_factory.mktemp("admin-state") / "state.json")
        context.storage_state(path=path)
        return path
    finally:
        context.close()


@pytest.fixture
def admin_page(browser: Browser, server: ThreadServer, signed_in_state: str) -> Iterator[Page]:
    """A fresh browser context already signed in, allowed to use the clipboard."""
    context = browser.new_context(storage_state=signed_in_state)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/admin/app/list")  # a cheap page (the landing page computes the dashboard)
        yield page
    finally:
        context.close()


def sign_in(page: Page, server: ThreadServer, email: str) -> None:
    page.goto(f"{server.url}/admin/")
    page.wait_for_url("**/admin/login")
    page.locator("#username").fill(email)
    page.locator("#password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")


def submit(page: Page, fields: dict[str, str], selects: dict[str, str] | None = None) -> None:
    for name, value in fields.items():
        page.locator(f"#{name}").fill(value)
    for name, value in (selects or {}).items():
        page.locator(f"#{name}").select_option(value)
    page.locator('input[type="submit"][value="Save"]').click()


def test_wrong_password_is_refused_then_sign_in_works(
    server: ThreadServer, seeded_database: tuple[str, str], page: Page
) -> None:
    page.goto(f"{server.url}/admin/login")
    page.locator("#username").fill(seeded_database[1])
    page.locator("#password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("Invalid email or password.")
    page.locator("#password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")


def test_create_an_app_copy_its_key_and_rotate_it(
    server: ThreadServer, seeded_database: tuple[str, str], admin_page: Page
) -> None:
    page = admin_page
    page.get_by_role("link", name="Apps").click()
    page.get_by_role("link", name="+ New App").click()
    submit(page, {"slug": "vega", "name": "Vega", "return_url": "https://vega.aquoris.test/settings"})
    page.wait_for_url("**/admin/app/list")
    expect(page.locator(".flash-messages")).to_contain_text("App “Vega” created.")
    row = page.locator("tr", has=page.locator('code[data-app-slug="vega"]'))
    expect(row).to_contain_text("apk_")
    row.get_by_role("button", name="Copy key").click()
    expect(row.get_by_role("button", name="Copied")).to_be_visible()
    key = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(r"apk_[A-Za-z0-9_-]{43}", key)
    assert key not in page.content()  # the table only ever shows it masked
    assert in_thread(asyncio.run, _check_key(seeded_database[0], key)) == "vega"

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Rotate key").click()
    expect(page.locator(".flash-messages")).to_contain_text("the old key no longer works")
    assert in_thread(asyncio.run, _check_key(seeded_database[0], key)) is None
    page.locator("tr", has=page.locator('code[data-app-slug="vega"]')).get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    new_key = page.evaluate("navigator.clipboard.readText()")
    assert new_key != key and in_thread(asyncio.run, _check_key(seeded_database[0], new_key)) == "vega"


def test_create_a_free_and_a_paid_plan(server: ThreadServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(f"{server.url}/admin/plan/create")
    submit(
        page,
        {"slug": "free", "name": "Aquoris Free", "price": "0", "features": "Core features\nSupport"},
        {"currency": "thb", "interval": "month"},
    )
    page.wait_for_url("**/admin/plan/list")
    expect(page.locator(".flash-messages")).to_contain_text("Plan “Aquoris Free” created.")

    # a Stripe Price ID that Stripe does not know is a field error, nothing saved
    page.goto(f"{server.url}/admin/plan/create")
    submit(
        page,
        {
            "slug": "pro",
            "name": "Aquoris PRO",
            "price": "299.00",
            "stripe_price_id": "price_nope123",
            "features": "Core features\nSupport",
        },
        {"currency": "thb", "interval": "month"},
    )
    expect(page.locator(".alert-danger")).to_contain_text("Stripe has no price price_nope123")
    expect(page.locator("#stripe_price_id.is-invalid")).to_be_visible()
    os.makedirs("/tmp/shots-21", exist_ok=True)
    page.screenshot(path="/tmp/shots-21/plan-unknown-price.png", full_page=True)

    # the admin has the product and price made in Stripe instead of copying an id
    page.locator("#stripe_price_id").fill("")
    page.locator("#create_in_stripe").check()
    page.locator('input[type="submit"][value="Save"]').click()
    page.wait_for_url("**/admin/plan/list")
    expect(page.locator(".flash-messages")).to_contain_text("Plan “Aquoris PRO” created. Stripe price price_")
    table = page.locator("table")
    expect(table).to_contain_text("Aquoris Free")
    expect(table.locator("tr", has_text="Aquoris PRO")).to_contain_text("THB 299.00")
    expect(table.locator("tr", has_text="Aquoris PRO")).to_contain_text("price_")

    # deactivating asks first and says what the pricing page will show
    questions: list[str] = []

    def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.locator('button[data-plan-slug="pro"]').click()
    expect(table.locator("tr", has_text="Aquoris PRO")).to_contain_text("Active")
    assert questions and "off the pricing page" in questions[0]
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('button[data-plan-slug="pro"]').click()
    expect(page.locator(".flash-messages")).to_contain_text("the pricing page no longer shows it")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('button[data-plan-slug="pro"]').click()
    expect(page.locator(".flash-messages")).to_contain_text("now active: the pricing page offers it")

    # "Check Stripe prices": the seeded plan's price id was never in Stripe, the new one fits
    page.get_by_role("button", name="Check Stripe prices").click()
    expect(page.locator(".flash-messages")).to_contain_text("1 of 2 paid plans no longer match their Stripe price")
    expect(page.locator('.plan-price-drift[data-plan-slug="seed-plan"]')).to_contain_text("Stripe has no price")
    expect(page.locator('.plan-price-drift[data-plan-slug="pro"]')).to_have_count(0)
    # the list fits beside the sidebar: nothing to scroll sideways, the last column's button in view
    assert page.evaluate(
        "() => { const t = document.querySelector('.table-responsive'); return t.scrollWidth <= t.clientWidth; }"
    )
    expect(page.locator('button[data-plan-slug="pro"]')).to_be_in_viewport()
    page.screenshot(path="/tmp/shots-21/plans-list.png", full_page=True)


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        (
            "app",
            {"slug": "long-name", "name": "n" * 1025, "return_url": "https://x.test"},
            "Name must be at most 1024 characters.",
        ),
        (
            "app",
            {"slug": "ftp", "name": "Ftp", "return_url": "ftp://x.test/"},
            "Return URL must be an http:// or https:// address.",
        ),
        ("plan", {"slug": "s" * 129, "name": "Too long", "price": "0"}, "Slug must be at most 128 characters."),
        ("plan", {"slug": "long-plan-name", "name": "n" * 1025, "price": "0"}, "Name must be at most 1024 characters."),
        ("plan", {"slug": "paid-no-price", "name": "Paid", "price": "1.00"}, "A paid plan needs its Stripe Price ID"),
        # (a new admin's password limits are on the set-password page: tests/admin/test_admin_users.py)
        ("admin-user", {"email": "ops@aquoris.test", "name": "n" * 1025}, "Name must be at most 1024 characters."),
        ("admin-user", {"email": "not-an-email", "name": "Ops"}, "Enter a valid email address."),
    ],
)
def test_each_limit_in_the_guide_shows_its_error(
    server: ThreadServer, admin_page: Page, path: str, fields: dict[str, str], message: str
) -> None:
    page = admin_page
    page.goto(f"{server.url}/admin/{path}/create")
    submit(page, fields)
    alert = page.locator(".alert-danger")
    expect(alert).to_contain_text(message)
    expect(page.locator(".is-invalid")).to_have_count(1)  # the offending input is marked
    for word in ("IntegrityError", "asyncpg", "Traceback", "violates"):
        assert word not in page.content()


def test_sidebar_spans_the_page_and_forms_have_no_empty_header_band(server: ThreadServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(f"{server.url}/admin/plan/create")
    expect(page.locator("#slug")).to_be_visible()
    assert page.locator(".page-header").count() == 0
    card_top = page.locator(".card").first.bounding_box()
    assert card_top is not None and card_top["y"] < 60  # the card starts near the top, no empty band above it
    page.locator("#features").fill("\n".join(["line"] * 5))
    page.set_viewport_size({"width": 1280, "height": 500})  # the form is now taller than the window
    heights = page.evaluate("""() => ({sidebar: document.querySelector('aside.navbar-vertical')
                                         .getBoundingClientRect().height,
                                       page: document.documentElement.scrollHeight})""")
    assert heights["page"] > 500 and heights["sidebar"] >= heights["page"] - 1
    os.makedirs("/tmp/shots-21", exist_ok=True)
    page.screenshot(path="/tmp/shots-21/plan-create-layout.png", full_page=True)


def test_filter_subscriptions_and_scroll_past_the_first_page(server: ThreadServer, admin_page: Page) -> None:
    page = admin_page
    page.get_by_role("link", name="Subscriptions").click()
    expect(page.locator("[data-total-count]")).to_have_attribute("data-total-count", str(ACTIVE + PAST_DUE))
    page.locator("#filter-status").select_option("active")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=active**")
    expect(page.locator("[data-total-count]")).to_have_text(f"{ACTIVE:,}")
    rows = page.locator("tr[data-row-id]")
    expect(rows).to_have_count(50)
    page.locator("#scroll-sentinel").scroll_into_view_if_needed()
    expect(rows).to_have_count(100)
    page.locator("#scroll-sentinel").scroll_into_view_if_needed()
    expect(rows).to_have_count(ACTIVE)
    expect(page.locator("#scroll-sentinel")).to_have_text("End of list")
    expect(page.locator("[data-shown-count]")).to_have_text(str(ACTIVE))
    ids = [int(x) for x in rows.evaluate_all("rows => rows.map(r => r.dataset.rowId)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == ACTIVE
    assert "past_due" not in page.locator("tbody").inner_text()


def test_the_audit_log_shows_every_action_and_sign_out(
    server: ThreadServer, seeded_database: tuple[str, str], page: Page
) -> None:
    sign_in(page, server, seeded_database[1])
    page.get_by_role("link", name="Audit log").click()
    table = page.locator("tbody")
    for action in (
        "admin.sign_in_failed",
        "admin.signed_in",
        "app.created",
        "app.key_copied",
        "app.key_rotated",
        "plan.created",
    ):
        expect(table.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    page.locator("#filter-action").fill("plan.created")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("[data-total-count]")).to_have_text("3")  # the seed plan, free and pro
    expect(table).to_contain_text('"slug": "pro"')
    expect(table).to_contain_text(re.compile(r"\"stripe_price_id\": \"price_\w+\""))

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/admin/login")
    sign_in(page, server, seeded_database[1])
    page.goto(f"{server.url}/admin/audit-log/list?action=admin.signed_out")
    expect(page.locator("tbody tr[data-action='admin.signed_out']").first).to_be_visible()
