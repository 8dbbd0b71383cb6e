"""Stripe's billing portal, for the card and past invoices only.

Plan changes, cancel and resume go through our billing page, where the app's rules (which changes are offered,
upgrade now and downgrade at renewal, the cancel reason) apply and every action is audited. A portal session on the
account's default configuration would let the user cancel or switch plans at Stripe past those rules, so every
portal session is created on our own configuration: card update and invoice history on; cancel, plan switch and
customer details off.

That configuration is found by its metadata (`aquoris_portal=card_and_invoices_v1`) among the account's active
configurations, created when missing (one idempotency key, so two processes starting at once make one), and its id
kept per gateway (one per process). A changed feature set gets a new metadata value, so an account never reuses a
configuration made with other features. No database transaction is open during these calls.
"""

from __future__ import annotations

import weakref
from typing import Any

from payment.audit import service as audit
from payment.billing.checkout import has_stripe_billing
from payment.db import Database
from payment.errors import NotFound, StripeError
from payment.models import Customer
from payment.stripe.gateway import StripeGateway

METADATA_KEY = "aquoris_portal"
METADATA_VALUE = "card_and_invoices_v1"
PAGE_SIZE = 100
CARD_AND_INVOICES: dict[str, Any] = {
    "features": {
        "payment_method_update": {"enabled": True},
        "invoice_history": {"enabled": True},
        "subscription_cancel": {"enabled": False},
        "subscription_update": {"enabled": False},
        "customer_update": {"enabled": False},
    },
    "metadata": {METADATA_KEY: METADATA_VALUE},
}
# errors that say Stripe is unreachable or busy, not that the configuration is gone: looking it up again won't help
_OUTAGES = frozenset({"stripe_unreachable", "stripe_unavailable", "stripe_rate_limited", "stripe_auth"})

_known: weakref.WeakKeyDictionary[StripeGateway, str] = weakref.WeakKeyDictionary()


def _ours(conf: dict[str, Any]) -> bool:
    metadata = conf.get("metadata") or {}
    return bool(conf.get("active")) and not conf.get("is_default") and metadata.get(METADATA_KEY) == METADATA_VALUE


async def _find(gateway: StripeGateway, page_size: int) -> str | None:
    params: dict[str, Any] = {"active": True, "limit": page_size}
    while True:
        page = await gateway.list_portal_configurations(params)
        for conf in page["data"]:
            if _ours(conf):
                return str(conf["id"])
        if not page.get("has_more") or not page["data"]:
            return None
        params = {**params, "starting_after": page["data"][-1]["id"]}


async def card_only_configuration(
    gateway: StripeGateway, *, page_size: int = PAGE_SIZE, replacing: str | None = None
) -> str:
    """The id of our card-and-invoices portal configuration: kept, found by its metadata, or created.

    `replacing` names one Stripe refused: the creation then has an idempotency key of its own (the first one would
    answer with the refused configuration for Stripe's 24 hours), still shared by processes replacing the same one."""
    known = _known.get(gateway)
    if known is not None:
        return known
    found = await _find(gateway, page_size)
    if found is None:
        key = f"aquoris-portal-configuration-{METADATA_VALUE}" + (f"-replacing-{replacing}" if replacing else "")
        made = await gateway.create_portal_configuration(CARD_AND_INVOICES, idempotency_key=key)
        found = str(made["id"])
    _known[gateway] = found
    return found


def forget(gateway: StripeGateway) -> None:
    """Drop the kept configuration id (the next portal session looks it up at Stripe again)."""
    _known.pop(gateway, None)


async def create_session(gateway: StripeGateway, *, customer: str, return_url: str) -> dict[str, Any]:
    """A portal session for this Stripe customer on the card-only configuration.

    A kept id Stripe no longer accepts (the configuration was deactivated in the Dashboard) is looked up once more."""
    configuration = await card_only_configuration(gateway)
    try:
        return await gateway.create_portal_session(
            customer=customer, return_url=return_url, configuration=configuration
        )
    except StripeError as exc:
        if exc.code in _OUTAGES:
            raise
        forget(gateway)
        again = await card_only_configuration(gateway, replacing=configuration)
        if again == configuration:
            raise
        return await gateway.create_portal_session(customer=customer, return_url=return_url, configuration=again)


async def open_portal(
    db: Database, gateway: StripeGateway, *, customer_id: int, app_id: int, back_url: str, actor: str
) -> str:
    """A card-only portal link for a customer who pays through Stripe, returning to the billing page; audited."""
    async with db.session() as session:
        customer = await session.get_one(Customer, customer_id)
        stripe_customer = customer.stripe_customer_id
        billed = await has_stripe_billing(session, customer)
    if stripe_customer is None or not billed:
        raise NotFound("There is no Stripe billing to manage yet.", code="no_stripe_billing")
    portal = await create_session(gateway, customer=stripe_customer, return_url=back_url)
    async with db.transaction() as session:
        await audit.record(
            session,
            actor=actor,
            action="billing_portal.opened",
            entity_type="customer",
            entity_id=customer_id,
            details={"app_id": app_id},
        )
    return str(portal["url"])
