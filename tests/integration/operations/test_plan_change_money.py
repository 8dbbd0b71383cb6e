"""Money after mid-period plan changes: every previewed amount is what Stripe invoices, and the dashboard's MRR and
revenue follow the changes, recomputed here from the invoices Stripe issued and the plans' prices."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from payment.dashboard.service import compute_dashboard
from payment.invoices.stripe_sync import upsert_from_stripe as upsert_invoice
from payment.models import App, Plan, Subscription
from payment.runtime import Services
from payment.stripe.gateway import StripeGateway
from payment.subscriptions import changes
from payment.subscriptions.stripe_sync import upsert_from_stripe
from tests.support import factories
from tests.support.db import in_db
from tests.support.stripe import paid_stripe_subscription, sandbox_control

ACTOR = "customer:1"
CURRENCY = "usd"  # this module's own currency: the dashboard totals nothing else from it


async def _plan(session: AsyncSession, gateway: StripeGateway, amount: int, interval: str = "month") -> Plan:
    product = await gateway.create_product({"name": f"Tier {amount} {interval}"})
    price = await gateway.create_price(
        {"product": product["id"], "currency": CURRENCY, "unit_amount": amount, "recurring": {"interval": interval}}
    )
    return await factories.create_plan(
        session, price_cents=amount, currency=CURRENCY, interval=interval, stripe_price_id=str(price["id"])
    )


Paid = list[tuple[int, datetime]]


async def _mirror(session: AsyncSession, gateway: StripeGateway, sub: Subscription) -> Paid:
    """What the webhooks would record: the subscription now and every invoice of it; returns the paid invoices'
    amounts and payment times, newest first."""
    assert sub.stripe_subscription_id is not None
    await upsert_from_stripe(
        session, gateway, await gateway.retrieve_subscription(sub.stripe_subscription_id), actor="stripe"
    )
    listing = await gateway.list_invoices({"subscription": sub.stripe_subscription_id, "limit": 100})
    paid = []
    for obj in listing["data"]:
        await upsert_invoice(session, gateway, await gateway.retrieve_invoice(str(obj["id"])), actor="stripe")
        if obj["status"] == "paid":
            paid.append((int(obj["amount_paid"]), datetime.fromtimestamp(obj["status_transitions"]["paid_at"], UTC)))
    return paid


def _revenue(paid: dict[str, Paid], now: datetime) -> int:
    """Paid since 00:00 UTC thirty days before today (the dashboard's window), summed here from Stripe's invoices."""
    start = datetime.combine(now.date(), time(), UTC) - timedelta(days=30)
    return sum(amount for invoices in paid.values() for amount, at in invoices if start <= at <= now)


def _amounts(paid: Paid) -> list[int]:
    return [amount for amount, _ in paid]


def _sandbox_now(sandbox: str) -> datetime:
    return datetime.fromtimestamp(int(sandbox_control(sandbox, "GET", "clock")["now"]), UTC)


async def test_previews_equal_invoices_and_mrr_and_revenue_follow_mid_period_changes(
    services: Services, sandbox: str
) -> None:
    gateway = services.stripe
    async with services.db.transaction() as session:
        app, _ = await factories.create_app(session)
        basic, plus = await _plan(session, gateway, 1000), await _plan(session, gateway, 2500)
        yearly = await _plan(session, gateway, 30000, "year")
        upgrader = await paid_stripe_subscription(session, gateway, sandbox, plan=basic)
        to_yearly = await paid_stripe_subscription(session, gateway, sandbox, plan=basic)
        downgrader = await paid_stripe_subscription(session, gateway, sandbox, plan=plus)
    sandbox_control(sandbox, "POST", "clock/advance", data={"seconds": str(10 * 86400 + 1234)})

    previews: dict[str, int] = {}
    async with services.db.transaction() as session:
        app_row = await session.get(App, app.id)
        assert app_row is not None
        for name, setup, target in (("upgrade", upgrader, plus), ("to yearly", to_yearly, yearly)):
            preview = await changes.preview_change(
                in_db(session), gateway, setup.subscription.id, app=app_row, plan_slug=target.slug, actor=ACTOR
            )
            outcome = await changes.change_plan(
                in_db(session),
                gateway,
                setup.subscription.id,
                app=app_row,
                plan_slug=target.slug,
                proration_date=preview.proration_date,
                actor=ACTOR,
            )
            assert preview.kind == changes.UPGRADE and not outcome.declined, name
            previews[name] = preview.amount_due_now
        downgrade = await changes.preview_change(
            in_db(session), gateway, downgrader.subscription.id, app=app_row, plan_slug=basic.slug, actor=ACTOR
        )
        await changes.change_plan(
            in_db(session),
            gateway,
            downgrader.subscription.id,
            app=app_row,
            plan_slug=basic.slug,
            proration_date=None,
            actor=ACTOR,
        )
        paid = {
            "upgrade": await _mirror(session, gateway, upgrader.subscription),
            "to yearly": await _mirror(session, gateway, to_yearly.subscription),
            "downgrade": await _mirror(session, gateway, downgrader.subscription),
        }

    # each immediate change invoiced exactly its preview, after the first month's payment
    assert _amounts(paid["upgrade"]) == [previews["upgrade"], 1000]
    assert _amounts(paid["to yearly"]) == [previews["to yearly"], 1000]
    assert _amounts(paid["downgrade"]) == [2500] and downgrade.amount_due_now == 0
    now = _sandbox_now(sandbox)
    board = await compute_dashboard(services.db, now=now)
    assert board.mrr.value is not None and board.revenue.value is not None
    # MRR now: plus (2500) + yearly / 12 + the downgrader still on plus until the period end
    expected_mrr = Fraction(2500) + Fraction(30000, 12) + Fraction(2500)
    assert board.mrr.value.amounts[CURRENCY] == round(expected_mrr)
    assert board.revenue.value.amounts[CURRENCY] == _revenue(paid, now) == 1000 + 1000 + 2500 + sum(previews.values())

    # the downgrade applies at renewal, at the previewed next charge
    period_end = downgrader.subscription.current_period_end
    assert period_end is not None
    sandbox_control(
        sandbox, "POST", "clock/advance", data={"seconds": str(int((period_end - now).total_seconds()) + 60)}
    )
    async with services.db.transaction() as session:
        paid["downgrade"] = await _mirror(session, gateway, downgrader.subscription)
        paid["upgrade"] = await _mirror(session, gateway, upgrader.subscription)
    assert _amounts(paid["downgrade"]) == [downgrade.next_charge_amount, 2500] == [1000, 2500]
    assert _amounts(paid["upgrade"])[0] == 2500  # the upgrader renewed at the new price
    later = _sandbox_now(sandbox)
    board = await compute_dashboard(services.db, now=later)
    assert board.mrr.value is not None and board.revenue.value is not None
    assert board.mrr.value.amounts[CURRENCY] == round(Fraction(2500) + Fraction(30000, 12) + Fraction(1000))
    assert board.revenue.value.amounts[CURRENCY] == _revenue(paid, later)
