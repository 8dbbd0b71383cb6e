"""The card-only portal configuration: found by its metadata, created once, reused, and used by every portal session."""

from __future__ import annotations

from typing import Any

from payment.billing import portal
from payment.runtime import Services
from tests.support.stripe import sandbox_call

CARD_ONLY = {
    "payment_method_update": True,
    "invoice_history": True,
    "subscription_cancel": False,
    "subscription_update": False,
    "customer_update": False,
}


async def _configurations(services: Services) -> list[dict[str, Any]]:
    page = await services.stripe.list_portal_configurations({"limit": 100})
    assert not page["has_more"]
    return list(page["data"])


async def _ours(services: Services) -> list[dict[str, Any]]:
    found = await _configurations(services)
    return [c for c in found if (c["metadata"] or {}).get("aquoris_portal") == "card_and_invoices_v1"]


async def test_the_configuration_is_created_once_with_card_and_invoices_only(services: Services, sandbox: str) -> None:
    portal.forget(services.stripe)
    # configurations of others: the account's default, one with other metadata, one with none
    await services.stripe.create_portal_configuration(
        {"features": {"invoice_history": {"enabled": True}}, "metadata": {"aquoris_portal": "card_and_invoices_v0"}},
        idempotency_key="other-metadata",
    )
    await services.stripe.create_portal_configuration(
        {"features": {"payment_method_update": {"enabled": True}}}, idempotency_key="no-metadata"
    )
    before = {c["id"] for c in await _configurations(services)}
    first = await portal.card_only_configuration(services.stripe, page_size=1)  # pages through all three
    assert first not in before
    [made] = await _ours(services)
    assert made["id"] == first and made["active"] and not made["is_default"]
    assert {name: made["features"][name]["enabled"] for name in CARD_ONLY} == CARD_ONLY

    # kept: the second call asks Stripe nothing, and there is still exactly one
    assert await portal.card_only_configuration(services.stripe) == first
    # a new process (nothing kept) finds it by its metadata, even pages away, and creates none
    portal.forget(services.stripe)
    assert await portal.card_only_configuration(services.stripe, page_size=1) == first
    assert [c["id"] for c in await _ours(services)] == [first]
    assert len(await _configurations(services)) == len(before) + 1


async def test_a_deactivated_configuration_is_replaced_and_sessions_use_ours(services: Services, sandbox: str) -> None:
    portal.forget(services.stripe)
    customer = await services.stripe.create_customer({"email": "portal@example.com"})
    first = await portal.card_only_configuration(services.stripe)
    # someone deactivates it in the Dashboard: the kept id is refused, looked up again, and a new one made
    await sandbox_call("POST", f"{sandbox}/v1/billing_portal/configurations/{first}", data={"active": "false"})
    session = await portal.create_session(services.stripe, customer=customer["id"], return_url="http://127.0.0.1/b")
    assert session["configuration"] != first
    [active] = [c for c in await _ours(services) if c["active"]]
    assert session["configuration"] == active["id"]
