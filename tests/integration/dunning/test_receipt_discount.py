"""The receipt of a discounted payment, through the Stripe sandbox (a promotion code at Checkout), its clock and a
real SMTP server: subtotal, discount and total, in English and Thai; the next, undiscounted renewal shows the
amount alone."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import pytest
from sqlalchemy import select, update

from payment.dunning import channel
from payment.models import Plan, PromotionCode
from payment.promotions import service as promotions
from payment.runtime import Services
from tests.integration.dunning.mailbox import SmtpServer, parts
from tests.support import factories
from tests.support.stripe import GOOD_CARD, World

_n = count(1)


async def _lines(services: Services, smtp_server: SmtpServer, address: str) -> tuple[str, list[str]]:
    """Send what is queued; the subject and text lines of the one new mail to `address`."""
    before = len(smtp_server.mailbox.to(address))
    assert await channel.deliver(services.db, services.settings) == 1
    [mail] = smtp_server.mailbox.to(address)[before:]
    text, _ = parts(mail)
    return str(mail["Subject"]), [line.strip() for line in text.splitlines()]


@pytest.mark.parametrize(
    ("locale", "first", "paid", "renewal"),
    [
        (
            "en",
            "Receipt for your payment of THB\u00a0239.20",
            ["Subtotal: THB\u00a0299.00", "Discount: -THB\u00a059.80", "Total paid: THB\u00a0239.20"],
            "Amount: THB\u00a0299.00",
        ),
        (
            "th",
            "ใบเสร็จสำหรับการชำระเงิน ฿239.20",
            ["ราคาก่อนส่วนลด: ฿299.00", "ส่วนลด: -฿59.80", "ยอดที่ชำระ: ฿239.20"],
            "จำนวนเงิน: ฿299.00",
        ),
    ],
)
async def test_a_discounted_payment_is_receipted_with_subtotal_discount_and_total(
    world: World,
    services: Services,
    smtp_server: SmtpServer,
    locale: str,
    first: str,
    paid: list[str],
    renewal: str,
) -> None:
    plan = await world.plan(amount=29900)
    async with services.db.transaction() as session:
        app, _ = await factories.create_app(session, name="Vega")
        await session.execute(update(Plan).where(Plan.id == plan.id).values(app_id=app.id, name="Vega Pro"))
        customer = await factories.create_customer(session)
        customer.locale = locale
    code = f"LAUNCH{next(_n)}{locale.upper()}"
    coupon = await promotions.create_coupon(
        services.db,
        services.stripe,
        promotions.CouponInput(name="Launch", duration="once", percent_off=Decimal(20), app_id=app.id, code=code),
        request_key=f"receipt-test-{code}",
        actor="test",
    )
    async with services.db.session() as session:
        promo = (await session.scalars(select(PromotionCode).where(PromotionCode.coupon_id == coupon.id))).one()
    checkout = await services.stripe.create_checkout_session(
        {
            "mode": "subscription",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "client_reference_id": str(customer.id),
            "metadata": {"customer_id": str(customer.id), "plan_id": str(plan.id)},
            "customer_email": customer.email,
            "discounts": [{"promotion_code": promo.stripe_promotion_code_id}],
            "success_url": "http://127.0.0.1/billing/done",
            "cancel_url": "http://127.0.0.1/billing",
        }
    )
    await world.control("POST", f"checkout_sessions/{checkout['id']}/pay", data={"card": GOOD_CARD})
    await world.apply_all(await world.events())
    [invoice] = await world.invoices(customer)
    assert (invoice.subtotal_cents, invoice.discount_cents, invoice.amount_cents) == (29900, 5980, 23920)

    subject, lines = await _lines(services, smtp_server, str(customer.email))
    assert subject == first
    start = lines.index(paid[0])
    assert lines[start : start + 3] == paid

    # the coupon was for the first payment only: the renewal's receipt shows the full amount and no discount
    seen = len(await world.events())
    await world.advance(31)
    await world.apply_all(await world.events(after=seen))
    assert [i.discount_cents for i in await world.invoices(customer)] == [5980, 0]
    _, lines = await _lines(services, smtp_server, str(customer.email))
    assert renewal in lines
    assert not {paid[0].split(":")[0], paid[1].split(":")[0]} & {line.split(":")[0] for line in lines}
