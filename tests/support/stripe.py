"""The one Stripe-world helper for tests: the sandbox, its controls, Stripe objects in it, and our rows mirroring them.

Three levels, pick the lowest that does the job:

- **The sandbox.** `sandbox_server` (one offline Stripe emulator per run) and `sandbox` (its URL, state reset for
  the test) are fixtures; `reset_sandbox`, `sandbox_control` / `sandbox_call` (its `/_sandbox/...` controls and any
  Stripe call made as the Dashboard would), `inject_fault` (the next matching requests fail) and
  `register_webhook` (deliver its events to a URL) drive it. `stripe_price` makes a product and price through our
  gateway; `sign` and `event_body` make a Stripe-Signature header and an event body by hand.
- **A paid subscription, mirrored directly.** `paid_stripe_subscription` subscribes a customer through a sandbox
  Checkout paid with a test card and writes our rows through the same `upsert_from_stripe` the webhooks use, in
  the caller's session, without events or jobs: for admin operations on real Stripe state.
- **A World driven like a customer.** `World(services, sandbox_url)` (the `world` fixture) makes plans and
  customers, subscribes through Checkout, moves the sandbox's clock, lists the sandbox's events and applies them as
  the webhook and its job would: for the Stripe event path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.embedded_pg import free_port
from payment.invoices.stripe_sync import upsert_from_stripe as upsert_invoice
from payment.jobs import stripe_events
from payment.models import Customer, Invoice, Plan, Refund, StripeEvent, Subscription
from payment.runtime import Services
from payment.stripe.gateway import StripeGateway
from payment.stripe.inbox import store_event
from payment.stripe.version import API_VERSION
from payment.subscriptions.stripe_sync import upsert_from_stripe as upsert_subscription
from stripe_sandbox import create_sandbox_app
from tests.support import factories
from tests.support.app import ThreadServer

SANDBOX_KEY = "sk_test_aquoris_sandbox"
AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}
GOOD_CARD = "4242424242424242"
FAILING_CARD = "4000000000000341"  # attaches fine, every charge is declined
DAY = 86400
_n = count(1)


# ---------------------------------------------------------------------------------------------- the sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ThreadServer]:
    """The offline Stripe emulator on a free loopback port (state shared by the run; see `sandbox`)."""
    port = free_port()
    app = create_sandbox_app(base_url=f"http://127.0.0.1:{port}", retry_base_seconds=0.05)
    server = ThreadServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: ThreadServer) -> str:
    """The sandbox's base URL, with its state (objects, events, webhook endpoints, clock) reset for this test."""
    reset_sandbox(sandbox_server.url)
    return sandbox_server.url


def reset_sandbox(sandbox_url: str) -> None:
    """Forget every object, event, webhook endpoint and fault; the clock back to now."""
    sandbox_control(sandbox_url, "POST", "reset")


def sandbox_control(sandbox_url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One of the sandbox's own controls, `/_sandbox/<path>` (pay a Checkout, move the clock, faults, ...)."""
    response = httpx.request(method, f"{sandbox_url}/_sandbox/{path}", timeout=30, headers=AUTH, **kwargs)
    response.raise_for_status()
    data: dict[str, Any] = response.json() if response.content else {}
    return data


async def sandbox_call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A request to the sandbox as Stripe's Dashboard or its test controls would make it (any path)."""
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
        response = await http.request(method, url, **kwargs)
    assert response.status_code < 300, response.text
    return response


def inject_fault(
    sandbox_url: str, *, method: str, path_prefix: str, status: int = 500, times: int = 1, **extra: str
) -> None:
    """The sandbox answers the next matching request(s) with this error instead."""
    sandbox_control(
        sandbox_url,
        "POST",
        "faults",
        data={"method": method, "path_prefix": path_prefix, "status": str(status), "times": str(times), **extra},
    )


def register_webhook(sandbox_url: str, url: str, secret: str | None = None) -> str:
    """Point the sandbox's event deliveries at `url`; returns the endpoint's whsec_ secret."""
    data: dict[str, str] = {"url": url, "enabled_events[]": "*"}
    if secret is not None:
        data["secret"] = secret
    response = httpx.post(f"{sandbox_url}/v1/webhook_endpoints", data=data, headers=AUTH)
    response.raise_for_status()
    return str(response.json()["secret"])


async def stripe_price(
    gateway: StripeGateway,
    *,
    amount: int = 29900,
    currency: str = "thb",
    interval: str | None = "month",
    name: str | None = None,
    active: bool = True,
) -> str:
    """A product and its price in the sandbox, as an admin would make them in Stripe's Dashboard; the price's id.
    `interval=None` makes a one-time price."""
    product = await gateway.create_product({"name": name or f"Aquoris Pro {next(_n)}"})
    params: dict[str, Any] = {"product": product["id"], "unit_amount": amount, "currency": currency}
    if interval:
        params["recurring"] = {"interval": interval}
    price_id = str((await gateway.create_price(params))["id"])
    if not active:
        await gateway.client.v1.prices.update_async(price_id, params={"active": False})
    return price_id


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A Stripe-Signature header exactly as Stripe computes it."""
    ts = int(time.time()) if timestamp is None else timestamp
    return str(stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, ts))


def event_body(
    event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> bytes:
    event = {
        "id": event_id or f"evt_test_{next(_n)}_{int(time.time() * 1000)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created or int(time.time()),
        "type": event_type,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    return json.dumps(event).encode()


# ------------------------------------------------------------------------- a paid subscription, mirrored directly


@dataclass
class StripeSetup:
    customer: Customer
    plan: Plan
    subscription: Subscription
    invoice: Invoice
    stripe_subscription: dict[str, Any]


async def paid_stripe_subscription(
    session: AsyncSession,
    gateway: StripeGateway,
    sandbox_url: str,
    *,
    customer: Customer | None = None,
    plan: Plan | None = None,
    amount: int = 29900,
    currency: str = "thb",
) -> StripeSetup:
    """Subscribe through a sandbox Checkout paid with a test card, and record the rows the webhooks would."""
    if plan is None:
        plan = await factories.create_plan(
            session,
            price_cents=amount,
            currency=currency,
            stripe_price_id=await stripe_price(gateway, amount=amount, currency=currency),
        )
    assert plan.stripe_price_id is not None
    if customer is None:
        customer = await factories.create_customer(session)
    if customer.stripe_customer_id is None:
        created = await gateway.create_customer({"email": customer.email or "x@example.com"})
        customer.stripe_customer_id = str(created["id"])
        await session.flush()
    checkout = await gateway.create_checkout_session(
        {
            "mode": "subscription",
            "customer": customer.stripe_customer_id,
            "success_url": "http://app.test/ok",
            "cancel_url": "http://app.test/no",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        }
    )
    paid = sandbox_control(sandbox_url, "POST", f"checkout_sessions/{checkout['id']}/pay", data={"card": GOOD_CARD})
    stripe_sub = paid["subscription"]
    # the rows the webhooks would write, through the same mappings they use
    sub, _ = await upsert_subscription(
        session,
        gateway,
        await gateway.retrieve_subscription(stripe_sub["id"]),
        actor="stripe",
        customer=customer,
        plan_hint=plan,
    )
    stripe_invoice = await gateway.retrieve_invoice(str(stripe_sub["latest_invoice"]))
    invoice, _ = await upsert_invoice(session, gateway, stripe_invoice, actor="stripe")
    return StripeSetup(customer, plan, sub, invoice, stripe_sub)


# ------------------------------------------------------------------------------- a World driven like a customer


@dataclass
class World:
    services: Services
    sandbox_url: str

    async def control(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call to the sandbox's own controls (`/_sandbox/<path>`): pay a Checkout, move the clock, ..."""
        data: dict[str, Any] = (await sandbox_call(method, f"{self.sandbox_url}/_sandbox/{path}", **kwargs)).json()
        return data

    async def plan(self, *, amount: int = 29900, currency: str = "thb") -> Plan:
        """A monthly plan of ours with a real sandbox price."""
        price = await stripe_price(self.services.stripe, amount=amount, currency=currency)
        async with self.services.db.transaction() as session:
            return await factories.create_plan(session, price_cents=amount, currency=currency, stripe_price_id=price)

    async def customer(self) -> Customer:
        async with self.services.db.transaction() as session:
            return await factories.create_customer(session)

    async def subscribe(self, customer: Customer, plan: Plan, *, card: str = GOOD_CARD) -> dict[str, Any]:
        """Checkout as the billing page opens it, paid on the sandbox's hosted page; returns the session."""
        assert plan.stripe_price_id is not None
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "client_reference_id": str(customer.id),
            "metadata": {"customer_id": str(customer.id), "plan_id": str(plan.id)},
            "success_url": "http://127.0.0.1/billing/done",
            "cancel_url": "http://127.0.0.1/billing",
        }
        if customer.stripe_customer_id:
            params["customer"] = customer.stripe_customer_id
        else:
            params["customer_email"] = customer.email
        session = await self.services.stripe.create_checkout_session(params)
        paid = await self.control("POST", f"checkout_sessions/{session['id']}/pay", data={"card": card})
        return dict(paid["session"])

    async def advance(self, days: float) -> None:
        await self.control("POST", "clock/advance", data={"seconds": str(int(days * DAY))})

    async def set_card(self, stripe_customer_id: str, card: str) -> None:
        await self.control("POST", f"customers/{stripe_customer_id}/card", data={"card": card})

    async def now(self) -> int:
        return int((await self.control("GET", "clock"))["now"])

    async def events(self, *, after: int = 0) -> list[dict[str, Any]]:
        """Every event the sandbox emitted, oldest first (Stripe lists newest first)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self.services.stripe.list_events(params)
            found.extend(page["data"])
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
        found.reverse()
        return found[after:]

    async def apply(self, event: dict[str, Any]) -> bool:
        """Store the event as the webhook would and run the job body in-process."""
        async with self.services.db.transaction() as session:
            stored = await store_event(session, event)
        return await stripe_events.process_event(self.services, stored.id)

    async def apply_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self.apply(event)

    async def subscription(self, stripe_id: str) -> Subscription | None:
        async with self.services.db.session() as session:
            found: Subscription | None = await session.scalar(
                select(Subscription).where(Subscription.stripe_subscription_id == stripe_id)
            )
            return found

    async def invoices(self, customer: Customer) -> list[Invoice]:
        async with self.services.db.session() as session:
            return list(
                (
                    await session.scalars(
                        select(Invoice)
                        .where(Invoice.customer_id == customer.id)
                        .order_by(Invoice.period_start, Invoice.id)
                    )
                ).all()
            )

    async def refunds(self, customer: Customer) -> list[Refund]:
        async with self.services.db.session() as session:
            return list(
                (
                    await session.scalars(
                        select(Refund)
                        .join(Invoice, Refund.invoice_id == Invoice.id)
                        .where(Invoice.customer_id == customer.id)
                        .order_by(Refund.amount_cents)
                    )
                ).all()
            )

    async def event_row(self, stripe_event_id: str) -> StripeEvent | None:
        async with self.services.db.session() as session:
            found: StripeEvent | None = await session.scalar(
                select(StripeEvent).where(StripeEvent.stripe_event_id == stripe_event_id)
            )
            return found

    async def snapshot(self, customers: list[Customer]) -> dict[str, Any]:
        """What admins and the billing pages see of these customers: subscriptions, invoices, refunds."""
        ids = [c.id for c in customers]
        async with self.services.db.session() as session:
            subs = (
                await session.scalars(
                    select(Subscription)
                    .where(Subscription.customer_id.in_(ids))
                    .order_by(Subscription.stripe_subscription_id)
                )
            ).all()
            invs = (
                await session.scalars(
                    select(Invoice).where(Invoice.customer_id.in_(ids)).order_by(Invoice.stripe_invoice_id)
                )
            ).all()
            refs = (
                await session.scalars(
                    select(Refund)
                    .join(Invoice, Refund.invoice_id == Invoice.id)
                    .where(Invoice.customer_id.in_(ids))
                    .order_by(Refund.stripe_refund_id)
                )
            ).all()
            linked = (
                await session.scalars(
                    select(Customer.stripe_customer_id).where(Customer.id.in_(ids)).order_by(Customer.id)
                )
            ).all()

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "customers": list(linked),
            "subscriptions": [
                (
                    s.stripe_subscription_id,
                    s.customer_id,
                    s.plan_id,
                    s.status,
                    when(s.current_period_start),
                    when(s.current_period_end),
                    s.cancel_at_period_end,
                    when(s.canceled_at),
                    when(s.ended_at),
                )
                for s in subs
            ],
            "invoices": [
                (
                    i.stripe_invoice_id,
                    i.customer_id,
                    i.subscription_id is not None,
                    i.status,
                    i.amount_cents,
                    i.currency,
                    i.amount_refunded_cents,
                    when(i.paid_at),
                    when(i.period_start),
                    when(i.period_end),
                    i.attempt_count,
                    i.stripe_charge_id,
                    i.last_payment_error,
                )
                for i in invs
            ],
            "refunds": [(r.stripe_refund_id, r.amount_cents, r.currency, r.status) for r in refs],
        }

    async def forget(self, customers: list[Customer], event_ids: list[str]) -> None:
        """Undo what applying events did for these customers (to apply them again in another order)."""
        ids = [c.id for c in customers]
        async with self.services.db.transaction() as session:
            invoice_ids = select(Invoice.id).where(Invoice.customer_id.in_(ids))
            await session.execute(delete(Refund).where(Refund.invoice_id.in_(invoice_ids)))
            await session.execute(delete(Invoice).where(Invoice.customer_id.in_(ids)))
            await session.execute(delete(Subscription).where(Subscription.customer_id.in_(ids)))
            await session.execute(update(Customer).where(Customer.id.in_(ids)).values(stripe_customer_id=None))
            await session.execute(delete(StripeEvent).where(StripeEvent.stripe_event_id.in_(event_ids)))


@pytest.fixture
def world(services: Services, sandbox: str) -> World:
    """A World on this module's services and a freshly reset sandbox."""
    return World(services, sandbox)
