"""Small ways the admin used to answer 500 or leak: NUL bytes in list filters, ids beyond bigint, missing CSP,
cacheable pages, no HSTS in production."""

from __future__ import annotations

import logging

import httpx
import pytest

from payment.bootstrap import create_app
from payment.config import Settings
from payment.runtime import Services
from tests.integration.admin.conftest import page_token
from tests.support.app import asgi_client, running_services

LISTS = [
    "/admin/customer/list?q=a%00b",
    "/admin/subscription/list?status=act%00ive&plan=%00",
    "/admin/invoice/list?currency=th%00b",
    "/admin/refund/list?status=%00",
    "/admin/audit-log/list?actor=ad%00min",
    "/admin/stripe-event/list?type=%00",
    "/admin/app/list?search=%00",
]


@pytest.mark.parametrize("path", LISTS)
async def test_a_nul_byte_in_a_list_filter_is_a_clear_400(
    admin: httpx.AsyncClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await admin.get(path)
    assert response.status_code == 400
    assert "NUL character" in response.text
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text


BIG = str(2**63)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/admin/operations/subscription/{BIG}/cancel"),
        ("POST", f"/admin/operations/subscription/{BIG}/cancel"),
        ("GET", f"/admin/operations/customer/{2**64}/grant"),
        ("GET", f"/admin/admin-user/{BIG}/password"),
        ("POST", f"/admin/admin-user/{BIG}/password"),
        ("POST", f"/admin/stripe-event/retry/{BIG}"),
        ("POST", f"/admin/admin-user/{BIG}/end-sessions"),
        ("GET", f"/admin/customer/details/{BIG}"),
    ],
)
async def test_ids_beyond_bigint_are_not_found(admin: httpx.AsyncClient, method: str, path: str) -> None:
    data = {"csrf_token": await page_token(admin, "/admin/app/list")} if method == "POST" else None
    response = await admin.request(method, path, data=data)
    assert response.status_code == 404, response.text[:200]


async def test_the_largest_bigint_is_an_ordinary_unknown_id(admin: httpx.AsyncClient) -> None:
    response = await admin.get(f"/admin/admin-user/{2**63 - 1}/password")
    assert response.status_code == 404


async def test_admin_pages_carry_a_csp_with_a_script_nonce_and_are_never_cached(admin: httpx.AsyncClient) -> None:
    for path in ("/admin/app/list", "/admin/login", "/admin/admin-user/create"):
        response = await admin.get(path)
        csp = response.headers["content-security-policy"]
        assert (
            "default-src 'self'" in csp
            and "frame-ancestors 'none'" in csp
            and "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
        )
        assert response.headers["cache-control"] == "no-store"
    first, second = (await admin.get("/admin/app/list")).headers, (await admin.get("/admin/app/list")).headers
    assert first["content-security-policy"] != second["content-security-policy"]  # a fresh nonce each time
    # the inline script of a form error carries the page's nonce
    token = await page_token(admin, "/admin/admin-user/create")
    page = await admin.post(
        "/admin/admin-user/create",
        data={"email": "not-an-email", "name": "x", "password": "long-enough-1", "csrf_token": token},
    )
    nonce = page.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in page.text


async def test_production_sends_hsts_on_every_surface_and_other_environments_do_not(
    admin_settings: Settings, admin_services: Services
) -> None:
    async with (
        running_services(admin_settings.replace(app_env="production")) as production,
        asgi_client(create_app(services=production)) as client,
    ):
        for path in ("/api/health", "/admin/login", "/billing/unknown-token"):
            assert (await client.get(path)).headers["strict-transport-security"].startswith("max-age=31536000")
    async with asgi_client(create_app(services=admin_services)) as client:
        assert "strict-transport-security" not in (await client.get("/admin/login")).headers


async def test_admin_pages_report_browser_errors_through_our_own_origin(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/admin/app/list")
    assert '<script src="/api/client-errors.js"></script>' in page.text
    script = await admin.get("/api/client-errors.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert '"/api/client-errors"' in script.text and "unhandledrejection" in script.text
