"""The drift check: every customer linked to Stripe, in batches, compared with Stripe and the differences stored.

Memory stays bounded whatever the number of customers: our customers are streamed in keyset batches, and only one
batch's rows and Stripe objects are held at a time. No database transaction is open while Stripe is called: a batch
reads our side in a short session, fetches Stripe's side with bounded concurrency (429s back off, honouring
Retry-After), then writes its differences in one short transaction. A drift of a customer this run checked that it
no longer finds is closed; a customer whose fetch failed keeps its drifts as they were.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import procrastinate
from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment.audit import service as audit
from payment.db import Database
from payment.errors import StripeError
from payment.models import Customer, Drift, Invoice, Plan, Refund, Subscription, utcnow
from payment.reconciliation import service as reconciliation
from payment.reconciliation.compare import (
    Difference,
    OurInvoice,
    OurRefund,
    Ours,
    OurSubscription,
    Theirs,
    charges_to_open,
    compare_customer,
)
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON

log = logging.getLogger(__name__)

CHECK_NOW_TASK = "payment:reconcile_with_stripe_now"
CHECK_LOCK = "reconciliation"
DEFER_TIMEOUT_SECONDS = 5.0
BATCH_SIZE = 100
PAGE_SIZE = 100
RATE_LIMIT_ATTEMPTS = 6
RATE_LIMIT_MAX_WAIT_SECONDS = 30.0


@dataclass
class CheckResult:
    customers: int = 0
    failed_customers: int = 0
    found: int = 0
    opened: int = 0
    closed: int = 0
    stripe_calls: int = 0


@dataclass
class _Batch:
    customers: list[tuple[int, str]]
    ours: dict[int, Ours]


class _Stripe:
    """Stripe reads of one run: a concurrency limit shared by every call, and back-off on 429."""

    def __init__(self, gateway: StripeGateway, concurrency: int, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.gateway = gateway
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.sleep = sleep
        self.calls = 0

    async def call(self, fn: Callable[[dict[str, Any]], Awaitable[JSON]], params: dict[str, Any]) -> JSON:
        for attempt in range(RATE_LIMIT_ATTEMPTS):
            async with self.limit:
                self.calls += 1
                try:
                    return await fn(params)
                except StripeError as exc:
                    if exc.code != "stripe_rate_limited" or attempt == RATE_LIMIT_ATTEMPTS - 1:
                        raise
                    wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
            # wait outside the semaphore, so other customers' calls are not held up by this one's back-off
            await self.sleep(min(wait, RATE_LIMIT_MAX_WAIT_SECONDS))
        raise AssertionError("unreachable")

    async def all_pages(self, fn: Callable[[dict[str, Any]], Awaitable[JSON]], params: dict[str, Any]) -> list[JSON]:
        """Every object of a list endpoint, paged with `starting_after` (one customer's objects: small)."""
        found: list[JSON] = []
        page_params = {**params, "limit": PAGE_SIZE}
        while True:
            listing = await self.call(fn, page_params)
            data = reader.list_data(listing)
            found.extend(data)
            if not reader.has_more(listing) or not data:
                return found
            page_params = {**page_params, "starting_after": str(data[-1]["id"])}

    async def listing(self, fn: Callable[[dict[str, Any]], Awaitable[JSON]], params: dict[str, Any]) -> list[JSON]:
        """A list that a deleted customer's id may answer with "no such object": nothing to compare then (the
        customer's own drift says it was deleted), not a failed check."""
        try:
            return await self.all_pages(fn, params)
        except StripeError as exc:
            if exc.code == "resource_missing":
                return []
            raise

    async def customer(self, stripe_customer_id: str, ours: Ours) -> Theirs:
        """One customer at Stripe. Invoices are read only when we hold some of the customer's (one we never
        recorded is not a drift of its own), charges only when one of ours was paid by a charge (a refund of any
        other charge is not ours to book): fewer reads against the rate limit, same differences."""
        g = self.gateway
        cid = stripe_customer_id
        paid_by_charge = any(i.stripe_charge_id or i.stripe_payment_intent_id for i in ours.invoices)

        async def nothing() -> list[JSON]:
            return []

        customer, subs, invoices, charges = await asyncio.gather(
            self.call(lambda _: g.retrieve_customer(cid), {}),
            self.listing(g.list_subscriptions, {"customer": cid, "status": "all"}),
            self.listing(g.list_invoices, {"customer": cid}) if ours.invoices else nothing(),
            self.listing(g.list_charges, {"customer": cid}) if paid_by_charge else nothing(),
        )
        refunds: list[JSON] = []
        for charge_id in charges_to_open(ours.invoices, ours.refunds, charges):
            refunds += await self.all_pages(g.list_refunds, {"charge": charge_id})
        return Theirs(customer=customer, subscriptions=subs, invoices=invoices, charges=charges, refunds=refunds)


async def _next_customers(session: AsyncSession, after: int, size: int) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(Customer.id, Customer.stripe_customer_id)
        .where(Customer.stripe_customer_id.is_not(None), Customer.id > after)
        .order_by(Customer.id)
        .limit(size)
    )
    return [(int(r.id), str(r.stripe_customer_id)) for r in rows]


async def load_ours(session: AsyncSession, customer_ids: list[int]) -> dict[int, Ours]:
    """Our Stripe-backed rows of these customers (three queries, whatever the batch size)."""
    ours = {cid: Ours() for cid in customer_ids}
    subs = await session.execute(
        select(
            Subscription.customer_id,
            Subscription.stripe_subscription_id,
            Subscription.status,
            Plan.stripe_price_id,
            Subscription.current_period_end,
            Subscription.cancel_at_period_end,
            Subscription.cancel_at,
        )
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.customer_id.in_(customer_ids), Subscription.stripe_subscription_id.is_not(None))
    )
    for r in subs:
        ours[r[0]].subscriptions.append(OurSubscription(str(r[1]), r[2], r[3] or None, r[4], r[5], r[6]))
    invoices = await session.execute(
        select(
            Invoice.customer_id,
            Invoice.stripe_invoice_id,
            Invoice.status,
            Invoice.amount_cents,
            Invoice.currency,
            Invoice.paid_at,
            Invoice.amount_refunded_cents,
            Invoice.stripe_charge_id,
            Invoice.stripe_payment_intent_id,
        ).where(Invoice.customer_id.in_(customer_ids), Invoice.stripe_invoice_id.is_not(None))
    )
    for i in invoices:
        ours[i[0]].invoices.append(OurInvoice(str(i[1]), i[2], i[3], i[4], i[5], i[6], i[7], i[8]))
    refunds = await session.execute(
        select(Invoice.customer_id, Refund.stripe_refund_id, Refund.amount_cents, Refund.status)
        .join(Invoice, Invoice.id == Refund.invoice_id)
        .where(Invoice.customer_id.in_(customer_ids), Refund.stripe_refund_id.is_not(None))
    )
    for f in refunds:
        ours[f[0]].refunds.append(OurRefund(str(f[1]), f[2], f[3]))
    return ours


async def record(
    session: AsyncSession,
    found: list[tuple[int, Difference]],
    checked_customer_ids: list[int],
    *,
    started: datetime,
    now: datetime,
) -> tuple[int, int]:
    """Store what one batch found and close the open drifts of its checked customers that it no longer finds:
    (opened or reopened, closed). An ignored drift stays ignored; a fixed one that is found again reopens."""
    opened = 0
    for customer_id, diff in found:
        stmt = insert(Drift).values(
            kind=diff.kind,
            stripe_object_id=diff.stripe_object_id,
            customer_id=customer_id,
            ours=diff.ours,
            theirs=diff.theirs,
            expected_event=diff.expected_event,
            state="open",
            first_seen_at=now,
            last_seen_at=now,
        )
        existing = Drift.__table__.c
        reopen = existing.state == "fixed"
        upsert = stmt.on_conflict_do_update(
            constraint="uq_reconciliation_drifts_kind_object",
            set_={
                "ours": stmt.excluded.ours,
                "theirs": stmt.excluded.theirs,
                "expected_event": stmt.excluded.expected_event,
                "last_seen_at": now,
                "customer_id": customer_id,
                "state": case((reopen, "open"), else_=existing.state),
                "first_seen_at": case((reopen, now), else_=existing.first_seen_at),
                "resolved_by": case((reopen, None), else_=existing.resolved_by),
                "resolved_at": case((reopen, None), else_=existing.resolved_at),
                "reported_at": case((reopen, None), else_=existing.reported_at),
                "updated_at": now,
            },
        ).returning(Drift.id, (Drift.first_seen_at == now).label("new"))
        row = (await session.execute(upsert)).one()
        opened += int(bool(row.new))
    closed = 0
    if checked_customer_ids:
        result = await session.execute(
            update(Drift)
            .where(
                Drift.customer_id.in_(checked_customer_ids),
                Drift.state == "open",
                Drift.last_seen_at < started,
            )
            .values(state="fixed", resolved_by="system:reconciliation", resolved_at=now, updated_at=now)
            .returning(Drift.id)
        )
        closed = len(result.all())
    return opened, closed


async def run_check(
    db: Database,
    gateway: StripeGateway,
    *,
    concurrency: int = 4,
    batch_size: int = BATCH_SIZE,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CheckResult:
    """Compare every customer linked to Stripe with Stripe and keep the differences as drifts (see the module)."""
    started = utcnow()
    stripe = _Stripe(gateway, concurrency, sleep)
    result = CheckResult()
    after = 0
    while True:
        async with db.session() as session:
            customers = await _next_customers(session, after, batch_size)
            if not customers:
                break
            ours = await load_ours(session, [cid for cid, _ in customers])
        after = customers[-1][0]
        fetched = await asyncio.gather(
            *(stripe.customer(scid, ours[cid]) for cid, scid in customers), return_exceptions=True
        )
        found: list[tuple[int, Difference]] = []
        checked: list[int] = []
        for (cid, scid), theirs in zip(customers, fetched, strict=True):
            if isinstance(theirs, BaseException):
                if not isinstance(theirs, StripeError):
                    raise theirs
                result.failed_customers += 1
                log.warning("reconciliation: customer %s not checked (%s)", cid, theirs.code)
                continue
            checked.append(cid)
            found += [(cid, d) for d in compare_customer(scid, ours[cid], theirs)]
        async with db.transaction() as session:
            opened, closed = await record(session, found, checked, started=started, now=utcnow())
        result.customers += len(checked)
        result.found += len(found)
        result.opened += opened
        result.closed += closed
        del fetched, found, ours
    result.stripe_calls = stripe.calls
    async with db.transaction() as session:
        await audit.record(
            session,
            actor="system",
            action="reconciliation.checked",
            entity_type="reconciliation",
            details={
                "customers": result.customers,
                "failed_customers": result.failed_customers,
                "drifts_found": result.found,
                "opened": result.opened,
                "closed": result.closed,
            },
        )
    log.info(
        "reconciliation: %s customers checked (%s failed), %s drifts (%s new), %s closed",
        result.customers,
        result.failed_customers,
        result.found,
        result.opened,
        result.closed,
    )
    return result


async def report_stale(db: Database) -> int:
    """Drifts open for more than a day are logged as errors, each once: the logging integration sends them to
    Sentry (ids and kinds only: no amounts, no personal data)."""
    async with db.transaction() as session:
        stale = [(d.id, d.kind, d.stripe_object_id, d.first_seen_at) for d in await reconciliation.claim_stale(session)]
    for drift_id, kind, object_id, since in stale:
        log.error("reconciliation drift #%s (%s, %s) open since %s", drift_id, kind, object_id, since.isoformat())
    return len(stale)


async def request_check(jobs: procrastinate.App) -> str:
    """Ask a worker to run the check now (after the request's own commit): "queued", "already_queued" when a
    request is still waiting, or "unreachable" when the queue cannot be reached (the nightly run still comes)."""
    try:
        await asyncio.wait_for(
            jobs.configure_task(CHECK_NOW_TASK, queueing_lock=CHECK_NOW_TASK).defer_async(), DEFER_TIMEOUT_SECONDS
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        return "already_queued"
    except Exception as exc:
        log.warning("could not enqueue the reconciliation check (%s)", type(exc).__name__)
        return "unreachable"
    return "queued"
