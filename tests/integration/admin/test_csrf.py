"""Every unsafe request under /admin needs the session's CSRF token; a refusal says so in plain words."""

from __future__ import annotations

import httpx

from tests.integration.admin.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, page_token, sign_in


async def test_a_form_post_without_a_token_is_refused_with_a_message(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/admin/app/create", data={"slug": "evil", "name": "Evil", "return_url": "https://evil.example", "save": "Save"}
    )
    assert response.status_code == 403
    assert "Security check failed" in response.text and "nothing was changed" in response.text
    listing = await admin.get("/admin/app/list")
    assert "evil" not in listing.text


async def test_a_forged_or_foreign_token_is_refused(admin: httpx.AsyncClient, anon_other: httpx.AsyncClient) -> None:
    foreign = await page_token(anon_other, "/admin/login")  # valid, but for another session
    for token in ("forged", foreign):
        response = await admin.post("/admin/logout", data={"csrf_token": token})
        assert response.status_code == 403
    assert (await admin.get("/admin/app/list")).status_code == 200  # still signed in


async def test_the_header_token_is_accepted_for_scripts(anon: httpx.AsyncClient, root_admin: int) -> None:
    await sign_in(anon)
    token = await page_token(anon)
    assert (await anon.post("/admin/logout", headers={"X-CSRF-Token": token})).status_code == 302


async def test_the_login_form_is_protected_too(anon: httpx.AsyncClient, root_admin: int) -> None:
    response = await anon.post("/admin/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 403
    assert (await anon.get("/admin/app/list")).status_code == 302


async def test_every_unsafe_method_is_checked(admin: httpx.AsyncClient) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = await admin.request(method, "/admin/app/delete?pks=1")
        assert response.status_code == 403, method


async def test_a_token_issued_before_sign_in_stops_working_after_it(anon: httpx.AsyncClient, root_admin: int) -> None:
    before = await page_token(anon, "/admin/login")
    assert (
        await anon.post(
            "/admin/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": before}
        )
    ).status_code == 302
    assert (await anon.post("/admin/logout", data={"csrf_token": before})).status_code == 403
