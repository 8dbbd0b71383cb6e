"""Admin sessions as rows: each signed-in browser is listed (browser, IP, times, "this session") and can be signed out
on its own; sessions expire when idle or too old; the token is never stored, only its hash."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from payment.admins import service as admins
from payment.admins import sessions, two_factor
from payment.admins.permissions import AdminActor, PermissionDenied, Role
from payment.bootstrap import create_app
from payment.models import AdminSession, AuditLog, utcnow
from payment.runtime import Services
from tests.integration.admin.conftest import page_token, sign_in
from tests.support.app import asgi_client

PASSWORD = "a-long-admin-password"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
LIFETIME = sessions.Lifetime(idle=timedelta(hours=1), absolute=timedelta(hours=8))


async def new_admin(services: Services, role: Role = Role.VIEWER) -> tuple[int, str]:
    email = f"s-{secrets.token_hex(4)}@aquoris.test"
    async with services.db.transaction() as session:
        admin = await admins.create_admin(session, email=email, name="S", password=PASSWORD, role=role, actor="test")
    return admin.id, email


async def open_one(services: Services, admin_id: int, agent: str = FIREFOX) -> tuple[str, int]:
    async with services.db.transaction() as session:
        return await sessions.open_session(session, admin_id, ip="203.0.113.9", user_agent=agent, second_factor="none")


async def live(services: Services, token: str, now_shift: timedelta = timedelta()) -> sessions.Live | None:
    async with services.db.transaction() as session:
        return await sessions.find_live(session, token, lifetime=LIFETIME, now=utcnow() + now_shift)


async def row(services: Services, session_id: int) -> AdminSession:
    async with services.db.session() as session:
        found = await session.get(AdminSession, session_id)
        assert found is not None
        return found


def test_the_browser_is_summarised_in_a_few_words() -> None:
    assert sessions.summarise_user_agent(FIREFOX) == "Firefox on Linux"
    assert sessions.summarise_user_agent(SAFARI) == "Safari on iOS"
    assert sessions.summarise_user_agent("curl/8.5.0") == "curl/8.5.0"
    assert sessions.summarise_user_agent("") == "unknown"


async def test_only_the_hash_of_the_token_is_stored(admin_services: Services) -> None:
    admin_id, _ = await new_admin(admin_services)
    token, session_id = await open_one(admin_services, admin_id)
    stored = await row(admin_services, session_id)
    assert stored.token_hash == sessions.hash_token(token) and token.encode() not in stored.token_hash
    assert len(token) >= 43  # 256 bits, URL-safe
    assert (stored.user_agent, stored.ip, stored.second_factor) == ("Firefox on Linux", "203.0.113.9", "none")
    found = await live(admin_services, token)
    assert found is not None and (found.admin.id, found.session_id) == (admin_id, session_id)
    assert await live(admin_services, token + "x") is None


async def test_last_seen_moves_at_most_once_a_minute(admin_services: Services) -> None:
    admin_id, _ = await new_admin(admin_services)
    token, session_id = await open_one(admin_services, admin_id)
    first = (await row(admin_services, session_id)).last_seen_at
    assert await live(admin_services, token) is not None
    assert (await row(admin_services, session_id)).last_seen_at == first  # seen seconds ago: no write
    assert await live(admin_services, token, timedelta(seconds=61)) is not None
    assert (await row(admin_services, session_id)).last_seen_at > first


async def test_a_session_expires_when_idle_and_when_too_old(admin_services: Services) -> None:
    admin_id, _ = await new_admin(admin_services)
    token, _ = await open_one(admin_services, admin_id)
    assert await live(admin_services, token, timedelta(minutes=59)) is not None  # and now seen at +59 min
    assert await live(admin_services, token, timedelta(minutes=59 + 61)) is None  # an hour after that: idle
    fresh, fresh_id = await open_one(admin_services, admin_id)
    async with admin_services.db.transaction() as session:
        await session.execute(
            update(AdminSession)
            .where(AdminSession.id == fresh_id)
            .values(created_at=utcnow() - timedelta(hours=8, minutes=1))
        )
    assert await live(admin_services, fresh) is None  # active all along, but older than the absolute lifetime


async def test_an_admin_ends_their_own_session_but_not_anothers_without_the_right(admin_services: Services) -> None:
    viewer_id, _ = await new_admin(admin_services, Role.VIEWER)
    other_id, _ = await new_admin(admin_services, Role.VIEWER)
    _, own = await open_one(admin_services, viewer_id)
    _, others = await open_one(admin_services, other_id)
    viewer = AdminActor(viewer_id, Role.VIEWER)
    async with admin_services.db.transaction() as session:
        ended = await sessions.revoke(session, own, actor=viewer, ip="198.51.100.1")
        assert ended.revoked_reason == sessions.REVOKED
    with pytest.raises(PermissionDenied):
        async with admin_services.db.transaction() as session:
            await sessions.revoke(session, others, actor=viewer)
    with pytest.raises(PermissionDenied):
        async with admin_services.db.transaction() as session:
            await sessions.live_sessions(session, other_id, actor=viewer, lifetime=LIFETIME, now=utcnow())
    assert (await row(admin_services, others)).revoked_at is None
    owner_id, _ = await new_admin(admin_services, Role.OWNER)
    async with admin_services.db.transaction() as session:
        await sessions.revoke(session, others, actor=AdminActor(owner_id, Role.OWNER))
    async with admin_services.db.session() as session:
        audited = (
            await session.execute(
                select(AuditLog.actor, AuditLog.entity_id).where(AuditLog.action == "admin.session_revoked")
            )
        ).all()
    assert (f"admin:{viewer_id}", str(viewer_id)) in audited and (f"admin:{owner_id}", str(other_id)) in audited


async def test_deactivation_password_and_two_factor_reset_end_every_session(admin_services: Services) -> None:
    owner_id, _ = await new_admin(admin_services, Role.OWNER)
    owner = AdminActor(owner_id, Role.OWNER)
    target_id, _ = await new_admin(admin_services)
    for change in ("deactivate", "password", "two_factor"):
        tokens = [(await open_one(admin_services, target_id))[0] for _ in range(2)]
        async with admin_services.db.transaction() as session:
            if change == "deactivate":
                await admins.set_active(session, target_id, False, acting_admin_id=owner_id, actor=owner)
                await admins.set_active(session, target_id, True, acting_admin_id=owner_id, actor=owner)
            elif change == "password":
                await admins.change_password(session, target_id, "brand-new-password", actor=owner)
            else:
                await two_factor.reset(session, target_id, actor=owner)
        assert [await live(admin_services, token) for token in tokens] == [None, None], change


async def test_own_password_change_keeps_the_changers_session(admin_services: Services) -> None:
    admin_id, _ = await new_admin(admin_services)
    keep, keep_id = await open_one(admin_services, admin_id)
    other, _ = await open_one(admin_services, admin_id, SAFARI)
    async with admin_services.db.transaction() as session:
        await admins.change_password(
            session, admin_id, "brand-new-password", actor=AdminActor(admin_id, Role.VIEWER), keep_session=keep_id
        )
    assert await live(admin_services, keep) is not None
    assert await live(admin_services, other) is None


async def test_prune_deletes_sessions_that_ended_long_ago(admin_services: Services) -> None:
    admin_id, _ = await new_admin(admin_services)
    ids = [(await open_one(admin_services, admin_id))[1] for _ in range(4)]
    long_ago = utcnow() - sessions.KEEP_ENDED - timedelta(hours=1)
    async with admin_services.db.transaction() as session:
        await session.execute(
            update(AdminSession).where(AdminSession.id == ids[0]).values(revoked_at=long_ago, revoked_reason="revoked")
        )
        await session.execute(update(AdminSession).where(AdminSession.id == ids[1]).values(last_seen_at=long_ago))
        await session.execute(
            update(AdminSession).where(AdminSession.id == ids[2]).values(revoked_at=utcnow(), revoked_reason="revoked")
        )
        await sessions.prune(session, lifetime=LIFETIME, now=utcnow())
    async with admin_services.db.session() as session:
        left = set((await session.execute(select(AdminSession.id).where(AdminSession.id.in_(ids)))).scalars())
    assert left == {ids[2], ids[3]}  # recently ended stays listed a while; live stays


@pytest.fixture
async def two_browsers(admin_services: Services) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, int]]:
    admin_id, email = await new_admin(admin_services)
    async with (
        asgi_client(create_app(services=admin_services)) as first,
        asgi_client(create_app(services=admin_services)) as second,
    ):
        first.headers["User-Agent"], second.headers["User-Agent"] = FIREFOX, SAFARI
        for client in (first, second):
            assert (await sign_in(client, email, PASSWORD)).status_code == 302
        yield first, second, admin_id


async def test_signing_out_one_session_leaves_the_other_signed_in(
    admin_services: Services, two_browsers: tuple[httpx.AsyncClient, httpx.AsyncClient, int]
) -> None:
    first, second, admin_id = two_browsers
    page = await first.get(f"/admin/admin-user/{admin_id}/sessions")
    assert page.status_code == 200
    assert "Firefox on Linux" in page.text and "Safari on iOS" in page.text
    assert page.text.count("data-this-session") == 1
    async with admin_services.db.session() as session:
        listed = await sessions.live_sessions(
            session, admin_id, actor=AdminActor(admin_id, Role.VIEWER), lifetime=LIFETIME, now=utcnow()
        )
    safari = next(s for s in listed if s.user_agent == "Safari on iOS")
    token = await page_token(first, f"/admin/admin-user/{admin_id}/sessions")
    revoked = await first.post(
        f"/admin/admin-user/{admin_id}/sessions/{safari.id}/revoke", data={"csrf_token": token, "back": "page"}
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"].endswith(f"/admin/admin-user/{admin_id}/sessions")
    assert "That session (Safari on iOS) is signed out." in (await first.get(revoked.headers["location"])).text
    assert (await first.get("/admin/app/list")).status_code == 200  # this browser stays in
    sent_away = await second.get("/admin/app/list")
    assert sent_away.status_code == 302 and "/admin/login" in sent_away.headers["location"]
    async with admin_services.db.session() as session:
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "admin.session_revoked", AuditLog.actor == f"admin:{admin_id}")
        )
    assert audited == 1


async def test_revoking_needs_a_post_with_the_csrf_token(
    two_browsers: tuple[httpx.AsyncClient, httpx.AsyncClient, int],
) -> None:
    first, second, admin_id = two_browsers
    page = await first.get(f"/admin/admin-user/{admin_id}/sessions")
    sid = page.text.split('data-revoke-session="')[1].split('"')[0]
    assert (await first.get(f"/admin/admin-user/{admin_id}/sessions/{sid}/revoke")).status_code in (404, 405)
    refused = await first.post(f"/admin/admin-user/{admin_id}/sessions/{sid}/revoke", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    for client in (first, second):
        assert (await client.get("/admin/app/list")).status_code == 200


async def test_the_admin_users_list_shows_each_admins_sessions(
    admin_services: Services,
    admin: httpx.AsyncClient,
    two_browsers: tuple[httpx.AsyncClient, httpx.AsyncClient, int],
) -> None:
    _, _, admin_id = two_browsers
    listing = (await admin.get("/admin/admin-user/list?pageSize=100")).text
    async with admin_services.db.session() as session:
        target = await admins.get_admin(session, admin_id)
    assert "data-sessions-of" in listing, listing[-3000:]
    block = listing.split(f'data-sessions-of="{target.email}"')[1].split("</ul>")[0]
    assert "Firefox on Linux" in block and "Safari on iOS" in block and "Sign out this session" in block
    assert "this session" not in block.replace("Sign out this session", "")  # the root admin's browser is not there
