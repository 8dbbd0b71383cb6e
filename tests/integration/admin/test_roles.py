"""Every admin action as each role: over HTTP (done, or a 403 page that says why plus an `admin.forbidden` audit
row) and by calling the service function directly (PermissionDenied or not)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins import password_links, sessions, two_factor
from payment.admins import service as admins
from payment.admins.permissions import PERMISSIONS, AdminActor, Permission, PermissionDenied, Role
from payment.apps import service as apps
from payment.bootstrap import create_app
from payment.errors import PaymentError
from payment.models import AdminSession, AdminUser, App, AuditLog, Drift, Plan, utcnow
from payment.payments.service import ManualPayment, record_manual
from payment.plans import service as plans
from payment.plans.service import PlanInput
from payment.promotions import service as promotions
from payment.reconciliation import service as reconciliation
from payment.refunds import service as refunds
from payment.runtime import Services
from payment.stripe import events
from payment.subscriptions import service as subscriptions
from tests.integration.admin.conftest import ADMIN_PASSWORD, csrf_from, sign_in
from tests.support import factories
from tests.support.app import asgi_client
from tests.support.db import in_db
from tests.support.factories import SECRET


@dataclass
class World:
    accounts: dict[Role, int]
    customer_id: int
    subscription_id: int
    invoice_id: int
    refund_id: int
    app_id: int
    plan_id: int
    target_admin_id: int
    target_session_id: int
    drift_id: int


@pytest.fixture(scope="module")
async def world(admin_services: Services) -> World:
    async with admin_services.db.transaction() as session:
        accounts = {}
        for role in Role:
            admin = await admins.create_admin(
                session,
                email=f"{role.value}@roles.test",
                name=role.value,
                password=ADMIN_PASSWORD,
                role=role,
                actor="test",
            )
            accounts[role] = admin.id
        target = await admins.create_admin(
            session, email="target@roles.test", name="Target", password=ADMIN_PASSWORD, role=Role.VIEWER, actor="test"
        )
        customer = await factories.create_customer(session)
        plan = await factories.create_plan(session)
        sub = await factories.create_subscription(session, customer, plan, source="manual")
        invoice = await factories.create_invoice(session, customer, source="manual", subscription=sub)
        refund = await refunds.issue(
            session, invoice.id, reason="test", actor="test", amount_cents=100, also_cancel=True
        )
        app, _ = await factories.create_app(session)
        _, target_session = await sessions.open_session(
            session, target.id, ip="192.0.2.1", user_agent="matrix", second_factor="none"
        )
        drift = Drift(
            kind="subscription_missing",
            stripe_object_id="sub_roles_matrix",
            customer_id=customer.id,
            ours={},
            theirs={"status": "active"},
            expected_event="customer.subscription.created",
            first_seen_at=utcnow(),
            last_seen_at=utcnow(),
        )
        session.add(drift)
        await session.flush()
    return World(
        accounts, customer.id, sub.id, invoice.id, refund.id, app.id, plan.id, target.id, target_session, drift.id
    )


@pytest.fixture(scope="module")
async def clients(admin_services: Services, world: World) -> AsyncIterator[dict[Role, httpx.AsyncClient]]:
    opened: dict[Role, httpx.AsyncClient] = {}
    async with AsyncExitStack() as stack:
        for role in Role:
            client = await stack.enter_async_context(asgi_client(create_app(services=admin_services)))
            opened[role] = client
            signed_in = await sign_in(client, f"{role.value}@roles.test", ADMIN_PASSWORD)
            assert signed_in.status_code == 302, signed_in.text
        yield opened


@dataclass(frozen=True)
class HttpAction:
    name: str
    permission: Permission
    method: str
    path: Callable[[World], str]
    data: dict[str, str] | None = None


def _op(kind: str, action: str, pk: Callable[[World], int]) -> Callable[[World], str]:
    return lambda w: f"/admin/operations/{kind}/{pk(w)}/{action}"


HTTP_ACTIONS = [
    HttpAction(
        "cancel form",
        Permission.MANAGE_SUBSCRIPTIONS,
        "GET",
        _op("subscription", "cancel", lambda w: w.subscription_id),
    ),
    HttpAction(
        "resume form",
        Permission.MANAGE_SUBSCRIPTIONS,
        "GET",
        _op("subscription", "resume", lambda w: w.subscription_id),
    ),
    HttpAction(
        "extend form",
        Permission.MANAGE_SUBSCRIPTIONS,
        "GET",
        _op("subscription", "extend", lambda w: w.subscription_id),
    ),
    HttpAction(
        "extend post",
        Permission.MANAGE_SUBSCRIPTIONS,
        "POST",
        _op("subscription", "extend", lambda w: w.subscription_id),
        {"days": "1", "reason": "matrix"},
    ),
    HttpAction(
        "change plan form",
        Permission.MANAGE_SUBSCRIPTIONS,
        "GET",
        _op("subscription", "change-plan", lambda w: w.subscription_id),
    ),
    HttpAction(
        "change plan post",
        Permission.MANAGE_SUBSCRIPTIONS,
        "POST",
        _op("subscription", "change-plan", lambda w: w.subscription_id),
        {"plan_id": "1"},
    ),
    HttpAction("grant form", Permission.MANAGE_SUBSCRIPTIONS, "GET", _op("customer", "grant", lambda w: w.customer_id)),
    HttpAction(
        "record payment form", Permission.RECORD_PAYMENT, "GET", _op("customer", "payment", lambda w: w.customer_id)
    ),
    HttpAction("refund form", Permission.REFUND, "GET", _op("invoice", "refund", lambda w: w.invoice_id)),
    HttpAction(
        "refund post", Permission.REFUND, "POST", _op("invoice", "refund", lambda w: w.invoice_id), {"reason": "matrix"}
    ),
    HttpAction(
        "retry cancellation", Permission.REFUND, "GET", _op("refund", "retry-cancellation", lambda w: w.refund_id)
    ),
    HttpAction("run reconciliation check", Permission.RECONCILE, "POST", lambda w: "/admin/reconciliation/check"),
    HttpAction("take Stripe's form", Permission.RECONCILE, "GET", _op("drift", "take-stripes", lambda w: w.drift_id)),
    HttpAction("ignore drift form", Permission.RECONCILE, "GET", _op("drift", "ignore-drift", lambda w: w.drift_id)),
    HttpAction(
        "ignore drift post",
        Permission.RECONCILE,
        "POST",
        _op("drift", "ignore-drift", lambda w: w.drift_id),
        {"reason": "matrix"},
    ),
    HttpAction("webhook retry", Permission.RETRY_WEBHOOK, "POST", lambda w: "/admin/stripe-event/retry/999999"),
    HttpAction("new app form", Permission.MANAGE_APPS, "GET", lambda w: "/admin/app/create"),
    HttpAction("edit app form", Permission.MANAGE_APPS, "GET", lambda w: f"/admin/app/edit/{w.app_id}"),
    HttpAction("copy API key", Permission.REVEAL_API_KEY, "POST", lambda w: f"/admin/app/{w.app_id}/copy-key"),
    HttpAction("rotate API key", Permission.REVEAL_API_KEY, "POST", lambda w: f"/admin/app/{w.app_id}/rotate-key"),
    HttpAction("new plan form", Permission.MANAGE_PLANS, "GET", lambda w: "/admin/plan/create"),
    HttpAction("edit plan form", Permission.MANAGE_PLANS, "GET", lambda w: f"/admin/plan/edit/{w.plan_id}"),
    HttpAction(
        "plan activation",
        Permission.MANAGE_PLANS,
        "POST",
        lambda w: f"/admin/plan/{w.plan_id}/set-active",
        {"active": "1"},
    ),
    HttpAction("new admin form", Permission.MANAGE_ADMINS, "GET", lambda w: "/admin/admin-user/create"),
    HttpAction(
        "admin activation",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/set-active",
        {"active": "1"},
    ),
    HttpAction(
        "admin role",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/role",
        {"role": "viewer"},
    ),
    HttpAction(
        "set-password link",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/password-link",
    ),
    HttpAction(
        "reset two-factor",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/reset-two-factor",
    ),
    HttpAction("coupon create", Permission.MANAGE_PROMOTIONS, "POST", lambda w: "/admin/coupons/add", {"name": ""}),
    HttpAction(
        "promotion code deactivate",
        Permission.MANAGE_PROMOTIONS,
        "POST",
        lambda w: "/admin/promotion-codes/999999/deactivate",
    ),
    HttpAction(
        "another admin's sessions",
        Permission.MANAGE_ADMINS,
        "GET",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/sessions",
    ),
    HttpAction(
        "sign out another admin's session",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/sessions/{w.target_session_id}/revoke",
    ),
    HttpAction(
        "sign out another admin everywhere",
        Permission.MANAGE_ADMINS,
        "POST",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/end-sessions",
    ),
    HttpAction(
        "another admin's password form",
        Permission.MANAGE_ADMINS,
        "GET",
        lambda w: f"/admin/admin-user/{w.target_admin_id}/password",
    ),
]


async def _forbidden_rows(services: Services, admin_id: int, permission: Permission) -> int:
    async with services.db.session() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.action == "admin.forbidden",
                    AuditLog.actor == f"admin:{admin_id}",
                    AuditLog.entity_id == permission.value,
                )
            )
            or 0
        )


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("action", HTTP_ACTIONS, ids=[a.name for a in HTTP_ACTIONS])
async def test_http_action_as_role(
    admin_services: Services, world: World, clients: dict[Role, httpx.AsyncClient], role: Role, action: HttpAction
) -> None:
    client = clients[role]
    token = csrf_from((await client.get("/admin/")).text)
    before = await _forbidden_rows(admin_services, world.accounts[role], action.permission)
    path = action.path(world)
    if action.method == "GET":
        response = await client.get(path)
    else:
        response = await client.post(
            path, data={**(action.data or {}), "csrf_token": token}, headers={"X-CSRF-Token": token}
        )
    after = await _forbidden_rows(admin_services, world.accounts[role], action.permission)
    if action.permission in PERMISSIONS[role]:
        assert response.status_code != 403, response.text
        assert response.status_code < 500
        if action.method == "GET":
            assert response.status_code == 200, response.text
        assert after == before
    else:
        assert response.status_code == 403
        assert f"The {role.value} role cannot" in response.text
        assert after == before + 1


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_the_admin_hides_what_a_role_cannot_do(
    world: World, clients: dict[Role, httpx.AsyncClient], role: Role
) -> None:
    client = clients[role]
    customer = (await client.get(f"/admin/customer/details/{world.customer_id}")).text
    apps_page = (await client.get("/admin/app/list")).text
    admins_page = (await client.get("/admin/admin-user/list")).text
    drifts_page = (await client.get("/admin/reconciliation")).text
    allowed = PERMISSIONS[role]
    assert "sub_roles_matrix" in drifts_page  # everyone reads the drifts
    assert ("data-take-stripes" in drifts_page) == (Permission.RECONCILE in allowed)
    assert ('id="run-check"' in drifts_page) == (Permission.RECONCILE in allowed)
    assert ('id="action-grant"' in customer) == (Permission.MANAGE_SUBSCRIPTIONS in allowed)
    assert ('id="action-payment"' in customer) == (Permission.RECORD_PAYMENT in allowed)
    assert ("data-refund-invoice" in customer) == (Permission.REFUND in allowed)
    assert ("Copy key" in apps_page) == (Permission.REVEAL_API_KEY in allowed)
    assert ("Change role" in admins_page) == (Permission.MANAGE_ADMINS in allowed)
    assert ("/admin/app/create" in apps_page) == (Permission.MANAGE_APPS in allowed)


ServiceCall = Callable[[AsyncSession, Services, World, AdminActor], Awaitable[Any]]


async def _app(session: AsyncSession, world: World) -> App:
    return await apps.get_app(session, world.app_id)


async def _plan(session: AsyncSession, world: World) -> Plan:
    return await plans.get_plan(session, world.plan_id)


SERVICE_CALLS: list[tuple[str, Permission, ServiceCall]] = [
    (
        "subscriptions.cancel_at_period_end",
        Permission.MANAGE_SUBSCRIPTIONS,
        lambda s, sv, w, a: subscriptions.cancel_at_period_end(in_db(s), w.subscription_id, gateway=sv.stripe, actor=a),
    ),
    (
        "subscriptions.resume",
        Permission.MANAGE_SUBSCRIPTIONS,
        lambda s, sv, w, a: subscriptions.resume(in_db(s), w.subscription_id, gateway=sv.stripe, actor=a),
    ),
    (
        "subscriptions.extend",
        Permission.MANAGE_SUBSCRIPTIONS,
        lambda s, sv, w, a: subscriptions.extend(
            in_db(s), w.subscription_id, days=1, reason="matrix", gateway=sv.stripe, actor=a
        ),
    ),
    (
        "subscriptions.grant",
        Permission.MANAGE_SUBSCRIPTIONS,
        lambda s, sv, w, a: subscriptions.grant(
            in_db(s), w.customer_id, plan_id=w.plan_id, reason="matrix", gateway=sv.stripe, actor=a, days=1
        ),
    ),
    (
        "payments.record_manual",
        Permission.RECORD_PAYMENT,
        lambda s, sv, w, a: record_manual(
            s, w.customer_id, ManualPayment(100, "thb", "cash", f"M-{a}", w.plan_id, days=1), actor=a
        ),
    ),
    (
        "refunds.issue",
        Permission.REFUND,
        lambda s, sv, w, a: refunds.issue(s, w.invoice_id, reason="matrix", actor=a, amount_cents=1),
    ),
    (
        "refunds.retry_cancellation",
        Permission.REFUND,
        lambda s, sv, w, a: refunds.retry_cancellation(in_db(s), w.refund_id, gateway=sv.stripe, actor=a),
    ),
    (
        "refunds.cancel_after_refund",
        Permission.REFUND,
        lambda s, sv, w, a: refunds.cancel_after_refund(in_db(s), w.refund_id, gateway=sv.stripe, actor=a),
    ),
    (
        "reconciliation.take_stripes",
        Permission.RECONCILE,
        lambda s, sv, w, a: reconciliation.take_stripes(s, w.drift_id, {}, sv.stripe, actor=a),
    ),
    (
        "reconciliation.ignore",
        Permission.RECONCILE,
        lambda s, sv, w, a: reconciliation.ignore(s, w.drift_id, "matrix", actor=a),
    ),
    ("events.retry", Permission.RETRY_WEBHOOK, lambda s, sv, w, a: events.retry(s, 999999, actor=a)),
    (
        "apps.create_app",
        Permission.MANAGE_APPS,
        lambda s, sv, w, a: apps.create_app(
            s, slug="matrix", name="Matrix", return_url="https://m.example/", secret_key=SECRET, actor=a
        ),
    ),
    (
        "apps.update_app",
        Permission.MANAGE_APPS,
        lambda s, sv, w, a: _then(
            _app(s, w),
            lambda app: apps.update_app(
                s, app, name="Renamed", return_url="https://m.example/", is_active=True, actor=a
            ),
        ),
    ),
    (
        "apps.copy_key",
        Permission.REVEAL_API_KEY,
        lambda s, sv, w, a: _then(_app(s, w), lambda app: apps.copy_key(s, app, secret_key=SECRET, actor=a)),
    ),
    (
        "apps.rotate_key",
        Permission.REVEAL_API_KEY,
        lambda s, sv, w, a: _then(_app(s, w), lambda app: apps.rotate_key(s, app, secret_key=SECRET, actor=a)),
    ),
    (
        "plans.create_plan",
        Permission.MANAGE_PLANS,
        lambda s, sv, w, a: plans.create_plan(
            s, PlanInput(slug="matrix", name="Matrix", price_cents=100, currency="thb"), actor=a
        ),
    ),
    (
        "plans.update_plan",
        Permission.MANAGE_PLANS,
        lambda s, sv, w, a: _then(
            _plan(s, w),
            lambda plan: plans.update_plan(
                s, plan, PlanInput(slug=plan.slug, name="Renamed", price_cents=100, currency="thb"), actor=a
            ),
        ),
    ),
    (
        "plans.set_active",
        Permission.MANAGE_PLANS,
        lambda s, sv, w, a: _then(_plan(s, w), lambda plan: plans.set_active(s, plan, False, actor=a)),
    ),
    (
        "admins.create_admin",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: admins.create_admin(
            s, email="new@roles.test", name="New", password=ADMIN_PASSWORD, actor=a
        ),
    ),
    (
        "admins.set_active",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: admins.set_active(s, w.target_admin_id, False, acting_admin_id=a.admin_id, actor=a),
    ),
    (
        "admins.set_role",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: admins.set_role(s, w.target_admin_id, Role.FINANCE, actor=a),
    ),
    (
        "password_links.issue",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: password_links.issue(s, w.target_admin_id, actor=a),
    ),
    ("two_factor.reset", Permission.MANAGE_ADMINS, lambda s, sv, w, a: two_factor.reset(s, w.target_admin_id, actor=a)),
    (
        "sessions.revoke (another admin's)",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: sessions.revoke(s, w.target_session_id, actor=a),
    ),
    (
        "sessions.live_sessions (another admin's)",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: sessions.live_sessions(
            s,
            w.target_admin_id,
            actor=a,
            lifetime=sessions.Lifetime(timedelta(hours=1), timedelta(hours=8)),
            now=utcnow(),
        ),
    ),
    (
        "admins.end_sessions (another admin's)",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: admins.end_sessions(s, w.target_admin_id, actor=a),
    ),
    (
        "promotions.create_coupon",
        Permission.MANAGE_PROMOTIONS,
        lambda s, sv, w, a: promotions.create_coupon(
            sv.db, sv.stripe, promotions.CouponInput(name="", duration="once"), request_key="matrix", actor=a
        ),
    ),
    (
        "promotions.deactivate_code",
        Permission.MANAGE_PROMOTIONS,
        lambda s, sv, w, a: promotions.deactivate_code(sv.db, sv.stripe, 999999, actor=a),
    ),
    (
        "admins.change_password (another admin)",
        Permission.MANAGE_ADMINS,
        lambda s, sv, w, a: admins.change_password(s, w.target_admin_id, "another-password-1", actor=a),
    ),
]


async def _then(first: Awaitable[Any], then: Callable[[Any], Awaitable[Any]]) -> Any:
    return await then(await first)


@pytest.fixture
async def rolled_back(admin_services: Services) -> AsyncIterator[AsyncSession]:
    async with admin_services.db.sessionmaker() as session, session.begin() as tx:
        yield session
        await tx.rollback()


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize(("name", "permission", "call"), SERVICE_CALLS, ids=[c[0] for c in SERVICE_CALLS])
async def test_service_as_role(
    admin_services: Services,
    world: World,
    rolled_back: AsyncSession,
    role: Role,
    name: str,
    permission: Permission,
    call: ServiceCall,
) -> None:
    actor = AdminActor(world.accounts[role], role)
    if permission in PERMISSIONS[role]:
        try:
            await call(rolled_back, admin_services, world, actor)
        except PermissionDenied:  # pragma: no cover - the assertion below names the failure
            pytest.fail(f"{role} was refused {name}")
        except PaymentError:
            pass  # a business rule (e.g. nothing left to cancel) may refuse it: the role check passed
    else:
        with pytest.raises(PermissionDenied) as refused:
            await call(rolled_back, admin_services, world, actor)
        assert refused.value.permission == permission


async def test_an_admin_actor_without_a_role_is_refused(
    admin_services: Services, world: World, rolled_back: AsyncSession
) -> None:
    with pytest.raises(PermissionDenied):
        await admins.set_role(
            rolled_back, world.target_admin_id, Role.OWNER, actor=f"admin:{world.accounts[Role.OWNER]}"
        )


async def test_the_last_active_owner_cannot_leave(admin_services: Services, rolled_back: AsyncSession) -> None:
    # only one owner in this transaction's view: demote every other owner first
    owners = (
        await rolled_back.execute(select(AdminUser.id).where(AdminUser.role == "owner", AdminUser.is_active))
    ).scalars()
    owner_ids = list(owners)
    system = "test"
    for other in owner_ids[1:]:
        await admins.set_role(rolled_back, other, Role.FINANCE, actor=system)
    last = owner_ids[0]
    with pytest.raises(PaymentError, match="At least one active owner must remain"):
        await admins.set_role(rolled_back, last, Role.VIEWER, actor=system)
    with pytest.raises(PaymentError, match="At least one active owner must remain"):
        await admins.set_active(rolled_back, last, False, acting_admin_id=0, actor=system)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_every_role_sees_and_ends_its_own_sessions(
    admin_services: Services, world: World, clients: dict[Role, httpx.AsyncClient], role: Role
) -> None:
    client, admin_id = clients[role], world.accounts[role]
    async with admin_services.db.transaction() as session:
        _, laptop = await sessions.open_session(
            session, admin_id, ip="192.0.2.2", user_agent="laptop", second_factor="none"
        )
    page = await client.get(f"/admin/admin-user/{admin_id}/sessions")
    assert page.status_code == 200 and f'data-revoke-session="{laptop}"' in page.text
    token = csrf_from(page.text)
    ended = await client.post(f"/admin/admin-user/{admin_id}/sessions/{laptop}/revoke", data={"csrf_token": token})
    assert ended.status_code == 303
    async with admin_services.db.session() as session:
        assert (await session.get(AdminSession, laptop, populate_existing=True)).revoked_at is not None  # type: ignore[union-attr]
    assert (await client.get("/admin/")).status_code == 200  # the browser it was done from is still signed in
