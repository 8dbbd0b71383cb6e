"""The action pages over HTTP: form -> validation errors -> confirmation -> one service call; a second submission
of the same form, an over-refund and a duplicate reference change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import ColumnElement, func, select, text

from payment.admins import service as admins
from payment.bootstrap import create_app
from payment.models import AuditLog, Base, Customer, Invoice, Plan, Refund, Subscription
from payment.runtime import Services
from tests.support import factories
from tests.support.app import asgi_client
from tests.support.stripe import inject_fault, paid_stripe_subscription, sandbox_control

EMAIL, PASSWORD = "ops@aquoris.test", "correct-horse-battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
NONCE_RE = re.compile(r'name="nonce" value="([^"]+)"')


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


@pytest.fixture
async def admin(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with services.db.transaction() as session:
        if await admins.find_by_email(session, EMAIL) is None:
            await admins.create_admin(session, email=EMAIL, name="Ops", password=PASSWORD, actor="test")
    async with asgi_client(create_app(services=services)) as client:
        page = await client.get("/admin/login")
        token = CSRF_RE.search(page.text)
        assert token is not None
        signed_in = await client.post(
            "/admin/login", data={"username": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert signed_in.status_code == 302, signed_in.text
        yield client


async def _customer_and_plan(services: Services) -> tuple[Customer, Plan]:
    async with services.db.transaction() as session:
        return await factories.create_customer(session), await factories.create_plan(session)


async def _submit(client: httpx.AsyncClient, path: str, fields: dict[str, str]) -> httpx.Response:
    """Open the form, send it, and return the answer (a confirmation page when the fields are valid)."""
    form = await client.get(path)
    assert form.status_code == 200, form.text
    return await client.post(path, data={**_hidden(form.text), **fields})


async def _confirm(client: httpx.AsyncClient, path: str, confirmation: httpx.Response) -> httpx.Response:
    assert confirmation.status_code == 200 and 'id="operation-summary"' in confirmation.text, confirmation.text
    return await client.post(path, data=_hidden(confirmation.text))


async def _count(services: Services, model: type[Base], *where: ColumnElement[bool]) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_grant_form_validates_confirms_acts_once(admin: httpx.AsyncClient, services: Services) -> None:
    customer, plan = await _customer_and_plan(services)
    path = f"/admin/operations/customer/{customer.id}/grant"
    refused = await _submit(admin, path, {"plan_id": str(plan.id), "duration": "1", "unit": "months", "reason": "  "})
    assert refused.status_code == 422 and 'data-error-for="reason">A reason is required.' in refused.text
    confirmation = await _submit(
        admin, path, {"plan_id": str(plan.id), "duration": "14", "unit": "days", "reason": "Beta tester"}
    )
    assert "14 days" in confirmation.text and "none (free)" in confirmation.text
    assert await _count(services, Subscription, Subscription.customer_id == customer.id) == 0  # nothing yet
    done = await _confirm(admin, path, confirmation)
    assert done.status_code == 303 and done.headers["location"].endswith(f"/admin/customer/details/{customer.id}")
    again = await admin.post(path, data=_hidden(confirmation.text))  # the second click
    assert again.status_code == 303
    assert await _count(services, Subscription, Subscription.customer_id == customer.id) == 1
    assert await _count(services, AuditLog, AuditLog.action == "subscription.granted") == 1
    page = await admin.get(done.headers["location"])
    assert "Already done (this form was submitted twice): Granted" in page.text


async def test_grant_over_a_live_subscription_asks_to_replace(admin: httpx.AsyncClient, services: Services) -> None:
    customer, plan = await _customer_and_plan(services)
    async with services.db.transaction() as session:
        await factories.create_subscription(session, customer, plan, source="grant")
    path = f"/admin/operations/customer/{customer.id}/grant"
    refused = await _submit(
        admin, path, {"plan_id": str(plan.id), "duration": "1", "unit": "months", "reason": "Upgrade"}
    )
    # told on the form, before any confirmation page
    assert refused.status_code == 422 and "already has a live subscription" in refused.text
    assert 'id="operation-summary"' not in refused.text
    assert 'name="replace"' in refused.text
    confirmation = await admin.post(
        path,
        data={
            **_hidden(refused.text),
            "plan_id": str(plan.id),
            "duration": "1",
            "unit": "months",
            "reason": "Upgrade",
            "replace": "yes",
        },
    )
    assert "Replaces" in confirmation.text
    assert (await _confirm(admin, path, confirmation)).status_code == 303
    assert (
        await _count(services, Subscription, Subscription.customer_id == customer.id, Subscription.status == "active")
        == 1
    )


async def test_duplicate_reference_is_a_form_error(admin: httpx.AsyncClient, services: Services) -> None:
    customer, plan = await _customer_and_plan(services)
    path = f"/admin/operations/customer/{customer.id}/payment"
    fields = {
        "amount": "299.00",
        "currency": "thb",
        "payment_method": "bank_transfer",
        "reference_number": "SCB-0001",
        "plan_id": str(plan.id),
        "duration": "1",
        "unit": "months",
    }
    assert (await _confirm(admin, path, await _submit(admin, path, fields))).status_code == 303
    other, _ = await _customer_and_plan(services)
    other_path = f"/admin/operations/customer/{other.id}/payment"
    refused = await _submit(admin, other_path, {**fields, "reference_number": "scb-0001"})
    assert refused.status_code == 422 and 'id="operation-summary"' not in refused.text
    assert "A manual payment with reference number “scb-0001” is already recorded." in refused.text
    assert "IntegrityError" not in refused.text and "duplicate key" not in refused.text
    assert await _count(services, Invoice, Invoice.customer_id.in_([customer.id, other.id])) == 1
    bad_amount = await _submit(admin, path, {**fields, "amount": "2.999", "reference_number": "SCB-2"})
    assert bad_amount.status_code == 422 and "THB amounts have at most 2 decimals." in bad_amount.text


async def test_payment_in_another_currency_than_the_plans_is_refused(
    admin: httpx.AsyncClient, services: Services
) -> None:
    customer, plan = await _customer_and_plan(services)  # a THB plan
    path = f"/admin/operations/customer/{customer.id}/payment"
    fields = {
        "amount": "3000.00",
        "currency": "usd",
        "payment_method": "wire",
        "reference_number": "USD-1",
        "plan_id": str(plan.id),
        "duration": "6",
        "unit": "months",
    }
    refused = await _submit(admin, path, fields)
    assert refused.status_code == 422 and 'id="operation-summary"' not in refused.text
    assert 'data-error-for="currency">' in refused.text and "is sold in THB" in refused.text
    # even a confirmation forged past the form changes nothing
    forged = await admin.post(path, data={**_hidden(refused.text), **fields, "confirm": "yes"})
    assert forged.status_code == 422
    assert await _count(services, Invoice, Invoice.customer_id == customer.id) == 0
    paid = await _confirm(admin, path, await _submit(admin, path, {**fields, "currency": "thb"}))
    assert paid.status_code == 303
    async with services.db.session() as session:
        sub = (await session.execute(select(Subscription).where(Subscription.customer_id == customer.id))).scalar_one()
    assert (sub.paid_amount_cents, sub.paid_currency) == (300000, "thb")


async def test_over_refund_is_refused_without_side_effects(admin: httpx.AsyncClient, services: Services) -> None:
    async with services.db.transaction() as session:
        customer = await factories.create_customer(session)
        invoice = await factories.create_invoice(session, customer, source="manual", amount_cents=10000)
    path = f"/admin/operations/invoice/{invoice.id}/refund"
    form = await admin.get(path)
    assert 'value="100.00"' in form.text  # the default: all that remains refundable
    refused = await _submit(admin, path, {"amount": "100.01", "reason": "Too much"})
    assert (
        refused.status_code == 422
        and "The refund amount cannot be more than THB 100.00, what remains refundable." in refused.text
    )
    assert await _count(services, Refund, Refund.invoice_id == invoice.id) == 0
    async with services.db.transaction() as session:
        spent = await factories.create_invoice(
            session, customer, source="manual", amount_cents=100, status="refunded", amount_refunded_cents=100
        )
    form = await admin.get(f"/admin/operations/invoice/{spent.id}/refund")
    assert 'id="operation-error">Nothing is left to refund on this invoice' in form.text


async def test_forms_without_csrf_token_are_refused(admin: httpx.AsyncClient, services: Services) -> None:
    customer, plan = await _customer_and_plan(services)
    path = f"/admin/operations/customer/{customer.id}/grant"
    form = await admin.get(path)
    fields = {k: v for k, v in _hidden(form.text).items() if k != "csrf_token"}
    refused = await admin.post(
        path,
        data={**fields, "plan_id": str(plan.id), "duration": "1", "unit": "months", "reason": "x", "confirm": "yes"},
    )
    assert refused.status_code == 403
    assert await _count(services, Subscription, Subscription.customer_id == customer.id) == 0


async def test_stripe_refusal_is_shown_in_plain_words_and_the_refund_is_failed(
    admin: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    async with services.db.transaction() as session:
        setup = await paid_stripe_subscription(session, services.stripe, sandbox)
    path = f"/admin/operations/invoice/{setup.invoice.id}/refund"
    confirmation = await _submit(admin, path, {"amount": "10.00", "reason": "Duplicate charge"})
    inject_fault(
        sandbox,
        method="POST",
        path_prefix="/v1/refunds",
        status=400,
        code="charge_already_refunded",
        message="Charge ch_1 has already been refunded.",
    )
    refused = await _confirm(admin, path, confirmation)
    assert refused.status_code == 303
    page = await admin.get(refused.headers["location"])
    assert "This payment has already been refunded in full. Nothing was refunded." in page.text
    assert "ch_1" not in page.text and "Traceback" not in page.text
    # recorded before Stripe was called, then failed: it no longer holds back what is refundable
    async with services.db.session() as session:
        rows = (
            await session.execute(
                select(Refund.status, Refund.failure_reason).where(Refund.invoice_id == setup.invoice.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [("failed", "This payment has already been refunded in full.")]
    assert (
        await _count(
            services,
            AuditLog,
            AuditLog.action == "refund.failed",
            AuditLog.details["invoice_id"].as_integer() == setup.invoice.id,
        )
        == 1
    )


async def test_viewers_cannot_open_billing_actions(services: Services) -> None:
    customer, _ = await _customer_and_plan(services)
    async with services.db.transaction() as session:
        viewer = await admins.create_admin(
            session, email=f"viewer{customer.id}@aquoris.test", name="Viewer", password=PASSWORD, actor="test"
        )
        viewer.role = "viewer"
    async with asgi_client(create_app(services=services)) as client:
        page = await client.get("/admin/login")
        token = CSRF_RE.search(page.text)
        assert token is not None
        await client.post(
            "/admin/login", data={"username": viewer.email, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        answer = await client.get(f"/admin/operations/customer/{customer.id}/grant")
    assert answer.status_code == 403


async def test_a_constraint_the_database_enforces_is_a_form_error_not_a_500(
    admin: httpx.AsyncClient, services: Services
) -> None:
    """What the database refuses past the service's checks (here a trigger standing in for a unique index a
    concurrent save hit) is a plain message on the form: no 500, no driver text, nothing saved, the nonce free."""
    customer, plan = await _customer_and_plan(services)
    path = f"/admin/operations/customer/{customer.id}/grant"
    confirmation = await _submit(
        admin, path, {"plan_id": str(plan.id), "duration": "1", "unit": "months", "reason": "Race"}
    )
    function = f"refuse_grant_{customer.id}"
    async with services.db.transaction() as session:
        await session.execute(
            text(
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.customer_id = {customer.id} THEN RAISE unique_violation USING MESSAGE = "
                "'duplicate key value violates unique constraint \"internal_secret_index\"'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        await session.execute(
            text(f"CREATE TRIGGER {function} BEFORE INSERT ON subscriptions FOR EACH ROW EXECUTE FUNCTION {function}()")
        )
    try:
        refused = await admin.post(path, data=_hidden(confirmation.text))
    finally:
        async with services.db.transaction() as session:
            await session.execute(text(f"DROP TRIGGER {function} ON subscriptions"))
            await session.execute(text(f"DROP FUNCTION {function}()"))
    assert refused.status_code == 422, refused.text
    assert "That value is already in use" in refused.text
    assert "internal_secret_index" not in refused.text and "duplicate key" not in refused.text
    assert await _count(services, Subscription, Subscription.customer_id == customer.id) == 0
    # the same form goes through once the database agrees: the refused attempt claimed nothing
    done = await admin.post(path, data=_hidden(confirmation.text))
    assert done.status_code == 303, done.text
    assert await _count(services, Subscription, Subscription.customer_id == customer.id) == 1


async def test_change_plan_shows_stripes_preview_then_upgrades_at_the_previewed_amount(
    admin: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    async with services.db.transaction() as session:
        setup = await paid_stripe_subscription(session, services.stripe, sandbox, amount=29900)
        product = await services.stripe.create_product({"name": "Aquoris MAX"})
        price = await services.stripe.create_price(
            {"product": product["id"], "currency": "thb", "unit_amount": 49900, "recurring": {"interval": "month"}}
        )
        bigger = await factories.create_plan(session, price_cents=49900, stripe_price_id=str(price["id"]))
    sandbox_control(sandbox, "POST", "clock/advance", data={"seconds": str(6 * 86400)})
    path = f"/admin/operations/subscription/{setup.subscription.id}/change-plan"

    confirmation = await _submit(admin, path, {"plan_id": str(bigger.id)})

    assert "upgrade: takes effect now" in confirmation.text
    due = re.search(r'Due now</dt><dd class="col-sm-8">([^<]+)</dd>', confirmation.text)
    assert due is not None, confirmation.text
    assert await _count(services, AuditLog, AuditLog.action == "subscription.upgraded") == 0  # nothing yet
    done = await _confirm(admin, path, confirmation)
    assert done.status_code == 303
    async with services.db.session() as session:
        sub = await session.get(Subscription, setup.subscription.id)
        assert sub is not None and sub.plan_id == bigger.id
    stripe_sub = await services.stripe.retrieve_subscription(str(setup.subscription.stripe_subscription_id))
    invoice = await services.stripe.retrieve_invoice(str(stripe_sub["latest_invoice"]))
    shown = due.group(1).strip()
    assert f"{invoice['amount_paid'] / 100:,.2f}" in shown, (shown, invoice["amount_paid"])
    assert await _count(services, AuditLog, AuditLog.action == "subscription.upgraded") == 1
