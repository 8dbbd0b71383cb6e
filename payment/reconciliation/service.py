"""What admins do with drifts: list and count them, take Stripe's values, ignore one with a reason, run the check.

"Take Stripe's" is two steps so no transaction is open while Stripe answers: `fetch_stripe_side` reads the current
object from Stripe (no session), then `take_stripes` applies it in the caller's transaction through the same
domain function a webhook uses (`upsert_from_stripe` of subscriptions, invoices or refunds; the customer link rule
for a deleted Stripe customer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, ValidationError
from payment.invoices import stripe_sync as invoices_sync
from payment.listing import DEFAULT_PAGE_SIZE, Page, keyset_page
from payment.models import Customer, Drift, utcnow
from payment.models.reconciliation import DRIFT_KINDS, DRIFT_STATES
from payment.refunds import stripe_sync as refunds_sync
from payment.stripe import reader
from payment.stripe.gateway import StripeGateway
from payment.stripe.reader import JSON
from payment.subscriptions import stripe_sync as subscriptions_sync

log = logging.getLogger(__name__)

REPORT_AFTER = timedelta(days=1)
KIND_LABELS = {
    "subscription_differs": "Subscription differs",
    "subscription_missing": "Subscription missing here",
    "invoice_differs": "Invoice differs",
    "refund_differs": "Refund differs",
    "refund_missing": "Refund missing here",
    "customer_deleted": "Stripe customer deleted",
}


def filters_where(filters: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """The screen's filters (kind, state; open by default); unknown values are ignored."""
    where: list[ColumnElement[bool]] = []
    kind = filters.get("kind", "")
    if kind in DRIFT_KINDS:
        where.append(Drift.kind == kind)
    state = filters.get("state") or "open"
    if state in DRIFT_STATES:
        where.append(Drift.state == state)
    return where


async def list_drifts(
    session: AsyncSession, filters: Mapping[str, str], *, after: int | None = None, limit: int = DEFAULT_PAGE_SIZE
) -> Page[Drift]:
    """Drifts matching the filters, newest first, with their exact number."""
    return await keyset_page(
        session, select(Drift), key=Drift.id, after=after, limit=limit, count_model=Drift, where=filters_where(filters)
    )


async def open_count(session: AsyncSession) -> int:
    """How many drifts wait for an admin (the dashboard's figure)."""
    return int((await session.execute(select(func.count()).where(Drift.state == "open"))).scalar_one())


async def get(session: AsyncSession, drift_id: int) -> Drift:
    drift = await session.get(Drift, drift_id)
    if drift is None:
        raise NotFound("This drift does not exist.")
    return drift


async def _locked_open(session: AsyncSession, drift_id: int) -> Drift:
    drift: Drift | None = await session.scalar(select(Drift).where(Drift.id == drift_id).with_for_update())
    if drift is None:
        raise NotFound("This drift does not exist.")
    if drift.state != "open":
        raise Conflict(f"Drift #{drift.id} is already {drift.state}; nothing was changed.")
    return drift


async def fetch_stripe_side(gateway: StripeGateway, drift: Drift) -> dict[str, JSON]:
    """Stripe's current object(s) for a drift, read with no transaction open; call before `take_stripes`."""
    if drift.kind in ("subscription_differs", "subscription_missing"):
        return {"subscription": await gateway.retrieve_subscription(drift.stripe_object_id)}
    if drift.kind == "invoice_differs":
        invoice = await gateway.retrieve_invoice(drift.stripe_object_id)
        sub_id = reader.invoice_subscription_id(invoice)
        sub = await gateway.retrieve_subscription(sub_id) if sub_id else None
        return {"invoice": invoice, **({"subscription": sub} if sub is not None else {})}
    if drift.kind in ("refund_differs", "refund_missing"):
        charge_id = drift.theirs.get("charge")
        if not isinstance(charge_id, str) or not charge_id:
            raise ValidationError(f"Drift #{drift.id} does not name the charge of refund {drift.stripe_object_id}.")
        return {"charge": await gateway.retrieve_charge_with_refunds(charge_id)}
    return {"customer": await gateway.retrieve_customer(drift.stripe_object_id)}


async def take_stripes(
    session: AsyncSession,
    drift_id: int,
    stripe_side: dict[str, JSON],
    gateway: StripeGateway,
    *,
    actor: str,
    ip: str | None = None,
) -> Drift:
    """Make our rows equal to Stripe's for this drift, as the webhook that was missed would have, and mark it
    fixed (the next check reopens it if it still differs)."""
    require(actor, Permission.RECONCILE)
    drift = await _locked_open(session, drift_id)
    applied: dict[str, Any] = {}
    if "customer" in stripe_side:
        if not reader.customer_deleted(stripe_side["customer"]):
            raise Conflict(f"Stripe customer {drift.stripe_object_id} is not deleted any more; nothing was changed.")
        customer = await session.get(Customer, drift.customer_id, with_for_update=True)
        if customer is not None and customer.stripe_customer_id == drift.stripe_object_id:
            applied["unlinked"] = await subscriptions_sync.unlink_deleted_customer(session, customer, actor=actor)
    if "subscription" in stripe_side:
        sub, changes = await subscriptions_sync.upsert_from_stripe(
            session, gateway, stripe_side["subscription"], actor=actor
        )
        applied["subscription_id"], applied["subscription_changes"] = sub.id, changes.values
    if "invoice" in stripe_side:
        inv, changes = await invoices_sync.upsert_from_stripe(session, gateway, stripe_side["invoice"], actor=actor)
        applied["invoice_id"], applied["invoice_changes"] = inv.id, changes.values
    if "charge" in stripe_side:
        paid = await refunds_sync.reconcile_charge(session, gateway, stripe_side["charge"], actor=actor)
        if paid is None:
            raise Conflict(f"No invoice of ours was paid by the charge of refund {drift.stripe_object_id}.")
        applied["invoice_id"], applied["amount_refunded_cents"] = paid.id, paid.amount_refunded_cents
    drift.state, drift.resolved_by, drift.resolved_at = "fixed", str(actor), utcnow()
    await audit.record(
        session,
        actor=actor,
        action="reconciliation.take_stripes",
        entity_type="reconciliation_drift",
        entity_id=drift.id,
        details={"kind": drift.kind, "stripe_object_id": drift.stripe_object_id, "ours": drift.ours, **applied},
        ip=ip,
    )
    await session.flush()
    return drift


def check_reason(raw: str | None) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise ValidationError("A reason is required to ignore a drift.", field="reason")
    if len(reason) > 2000:
        raise ValidationError("The reason must be at most 2000 characters.", field="reason")
    return reason


async def ignore(session: AsyncSession, drift_id: int, reason: str, *, actor: str, ip: str | None = None) -> Drift:
    """Leave our books as they are for this drift, with the reason why; later checks keep it ignored."""
    require(actor, Permission.RECONCILE)
    reason = check_reason(reason)
    drift = await _locked_open(session, drift_id)
    drift.state, drift.reason, drift.resolved_by, drift.resolved_at = "ignored", reason, str(actor), utcnow()
    await audit.record(
        session,
        actor=actor,
        action="reconciliation.ignored",
        entity_type="reconciliation_drift",
        entity_id=drift.id,
        details={"kind": drift.kind, "stripe_object_id": drift.stripe_object_id, "reason": reason},
        ip=ip,
    )
    await session.flush()
    return drift


def request_check_allowed(actor: str) -> None:
    """Whether this admin may ask for a check now (the adapter then defers the job)."""
    require(actor, Permission.RECONCILE)


async def record_check_requested(session: AsyncSession, *, actor: str, ip: str | None = None) -> None:
    """Audit an admin's "Run check now"."""
    require(actor, Permission.RECONCILE)
    await audit.record(session, actor=actor, action="reconciliation.check_requested", ip=ip)


async def claim_stale(session: AsyncSession, *, now: datetime | None = None) -> list[Drift]:
    """Drifts open for more than a day that were never reported, marked reported now (each reaches Sentry once)."""
    now = now or utcnow()
    rows = (
        await session.scalars(
            select(Drift)
            .where(Drift.state == "open", Drift.reported_at.is_(None), Drift.first_seen_at < now - REPORT_AFTER)
            .order_by(Drift.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for drift in rows:
        drift.reported_at = now
    await session.flush()
    return list(rows)
