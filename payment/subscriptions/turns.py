"""A Stripe turn: how a subscription action calls Stripe without holding a transaction or a row lock.

An action runs in three steps. (1) A short transaction locks the subscription row, checks the rule against its
state and marks the row's turn (who, a nonce, an expiry), then commits. (2) Stripe is called with no transaction
open, each write keyed by the turn's nonce (Stripe's idempotency key). (3) A second short transaction locks the row
again, copies Stripe's answer onto it (the subscription's `upsert_from_stripe`), writes the adjustment and audit
rows and clears the turn. A second action on the same subscription meanwhile waits (polling, up to WAIT_SECONDS)
and then answers BUSY; a turn whose holder died expires after LEASE and is taken over. When Stripe refuses, the turn
is cleared and the refusal propagates: nothing of the action was written. A subscription that is not Stripe's
changes in the first transaction alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payment.db import Transactions
from payment.errors import Conflict, NotFound
from payment.models import Subscription, utcnow
from payment.models.billing import STRIPE_FETCH_TICKETS
from payment.stripe.gateway import Snapshot, StripeGateway, Unfetched

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.1
READ_ROUNDS = 6  # reads the mapping of Stripe's answer needs (a schedule, a card), one per round
BUSY = "Another change to this subscription is in progress. Wait a moment and try again."

P = TypeVar("P")
A = TypeVar("A")
T = TypeVar("T")


class TurnBusy(Conflict):
    code = "subscription_busy"


@dataclass(frozen=True)
class Turn:
    """The Stripe side of an action, as the first transaction saw the row."""

    subscription_id: int
    stripe_subscription_id: str
    stripe_schedule_id: str | None
    nonce: str

    def key(self, step: str) -> str:
        """The idempotency key of one Stripe write of this turn (a turn may make several)."""
        return f"aquoris-{self.nonce}-{step}"


async def lock_subscription(session: AsyncSession, subscription_id: int) -> Subscription:
    """The subscription row, locked for this (short) transaction."""
    sub = (
        await session.execute(
            select(Subscription)
            .where(Subscription.id == subscription_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if sub is None:
        raise NotFound("This subscription does not exist.")
    return sub


class Waiting:
    """The wait of an action for a turn another holds: poll until `wait` (WAIT_SECONDS by default) has passed, then
    answer `busy`. Also used by Subscribe for the customer's checkout turn (payment/billing/checkout.py)."""

    def __init__(self, wait: float | None = None) -> None:
        self.deadline = time.monotonic() + (WAIT_SECONDS if wait is None else wait)

    async def again(self, busy: Conflict) -> None:
        if time.monotonic() >= self.deadline:
            raise busy
        await asyncio.sleep(POLL_SECONDS)


def held(sub: Subscription) -> bool:
    """Another action is calling Stripe for this subscription (its turn has not expired)."""
    return sub.stripe_turn_until is not None and sub.stripe_turn_until > utcnow()


async def act(
    db: Transactions,
    subscription_id: int,
    *,
    actor: str,
    check: Callable[[AsyncSession, Subscription], Awaitable[P]],
    gateway: StripeGateway,
    call: Callable[[Turn, P], Awaitable[A]],
    apply: Callable[[AsyncSession, StripeGateway, Subscription, P, A | None], Awaitable[T]],
    wait: float | None = None,
) -> T:
    """Run one subscription action: `check` refuses or returns what the Stripe step needs (under the row lock),
    `call` talks to Stripe (no transaction open), `apply` writes the result (Stripe's answer, or None for a
    subscription that is not Stripe's, applied in the first transaction). `apply` gets a gateway that answers
    reads from what was fetched outside the transaction (the worker's snapshot): a read it lacks ends the
    transaction, is made, and `apply` runs again. `wait` defaults to WAIT_SECONDS (read at each call)."""
    nonce = secrets.token_urlsafe(24)
    waiting = Waiting(wait)
    while True:
        async with db.transaction() as session:
            sub = await lock_subscription(session, subscription_id)
            if not held(sub):
                if sub.stripe_turn_nonce is not None:
                    log.warning("taking over the expired Stripe turn of subscription %s", sub.id)
                plan = await check(session, sub)
                if sub.stripe_subscription_id is None:
                    return await apply(session, gateway, sub, plan, None)
                # taken before Stripe is called: a webhook's snapshot asked for after it is not older than ours
                ticket = int(await session.scalar(select(STRIPE_FETCH_TICKETS.next_value())) or 0)
                turn = Turn(sub.id, sub.stripe_subscription_id, sub.stripe_schedule_id, nonce)
                sub.stripe_turn_nonce = nonce
                sub.stripe_turn_by = str(actor)[:255]
                sub.stripe_turn_until = utcnow() + LEASE
                break
        await waiting.again(TurnBusy(BUSY))
    try:
        answer = await call(turn, plan)
    except Exception:
        await release(db, subscription_id, nonce)
        raise
    snapshot = Snapshot(ticket)
    recording, replaying = gateway.recording(snapshot), gateway.replaying(snapshot)
    try:
        for _ in range(READ_ROUNDS):
            try:
                async with db.transaction() as session:
                    sub = await lock_subscription(session, subscription_id)
                    result = await apply(session, replaying, sub, plan, answer)
                    _clear(sub, nonce)
                    return result
            except Unfetched as missing:
                await recording.fetch(missing)  # the transaction is over: no connection waits for Stripe
        raise RuntimeError(f"applying subscription {subscription_id} still needed Stripe reads")
    except Exception:
        # Stripe made the change but our rows did not take it: the subscription's webhook brings it
        await release(db, subscription_id, nonce)
        raise


def _clear(sub: Subscription, nonce: str) -> None:
    if sub.stripe_turn_nonce == nonce:  # a holder whose lease expired and was taken over clears nothing
        sub.stripe_turn_nonce = None
        sub.stripe_turn_by = None
        sub.stripe_turn_until = None


async def release(db: Transactions, subscription_id: int, nonce: str) -> None:
    """Give the turn back without applying anything (Stripe refused, or applying failed)."""
    try:
        async with db.transaction() as session:
            await session.execute(
                update(Subscription)
                .where(Subscription.id == subscription_id, Subscription.stripe_turn_nonce == nonce)
                .values(stripe_turn_nonce=None, stripe_turn_by=None, stripe_turn_until=None)
                .execution_options(synchronize_session=False)
            )
    except Exception:
        # the lease expires on its own; the error that brought us here is the one to report
        log.warning("could not release the Stripe turn of subscription %s", subscription_id)
