"""Drive the Stripe sandbox like a customer would, and apply or deliver its events to the service."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

import httpx
import stripe
from sqlalchemy import delete, select, update

from payment.jobs import stripe_events
from payment.models import Customer, Invoice, Plan, Refund, StripeEvent, Subscription
from payment.runtime import Services
from payment.stripe.inbox import store_event
from payment.stripe.version import API_VERSION
from tests.support import factories

SANDBOX_KEY = "sk_test_aquoris_sandbox"
GOOD_CARD = "4242424242424242"
FAILING_CARD = "4000000000000341"  # attaches fine, every charge is declined
DAY = 86400
_n = count(1)


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


@dataclass
class World:
    services: Services
    sandbox_url: str

    async def control(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=self.sandbox_url, timeout=30, headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
        ) as http:
            response = await http.request(method, f"/_sandbox/{path}", **kwargs)
        assert response.status_code < 300, response.text
        data: dict[str, Any] = response.json()
        return data

    async def plan(self, *, amount: int = 29900, currency: str = "thb") -> Plan:
        stripe = self.services.stripe
        product = await stripe.create_product({"name": f"Aquoris Pro {next(_n)}"})
        price = await stripe.create_price(
            {"product": product["id"], "currency": currency, "unit_amount": amount, "recurring": {"interval": "month"}}
        )
        async with self.services.db.transaction() as session:
            return await factories.create_plan(
                session, price_cents=amount, currency=currency, stripe_price_id=price["id"]
            )

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
