"""The database itself refuses what the admin guide forbids, whatever code path writes."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from payment.security import digest

APP_SQL = (
    "INSERT INTO apps (slug, name, return_url, api_key_hash, api_key_encrypted, api_key_hint) "
    "VALUES (:slug, :name, :url, :hash, 'x', 'x')"
)
PLAN_SQL = (
    "INSERT INTO plans (slug, name, price_cents, currency, interval, stripe_price_id) "
    "VALUES (:slug, 'Plan', :price, :currency, :interval, :price_id)"
)


async def _refused(db: AsyncSession, sql: str, **params: object) -> str:
    with pytest.raises(DBAPIError) as info:
        async with db.begin_nested():
            await db.execute(text(sql), params)
    return str(info.value.orig)


async def test_valid_app_and_plan_are_accepted(db: AsyncSession) -> None:
    await db.execute(
        text(APP_SQL), {"slug": "vega", "name": "Vega", "url": "https://vega.example/settings", "hash": digest("k")}
    )
    await db.execute(
        text(PLAN_SQL), {"slug": "pro", "price": 29900, "currency": "thb", "interval": "month", "price_id": "price_123"}
    )


@pytest.mark.parametrize(
    ("slug", "url", "constraint"),
    [
        ("a" * 129, "https://x.example", "slug"),
        ("Not Url Safe", "https://x.example", "slug_format"),
        ("ok", "ftp://x.example", "return_url_scheme"),
        ("ok", "javascript:alert(1)", "return_url_scheme"),
    ],
)
async def test_app_constraints(db: AsyncSession, slug: str, url: str, constraint: str) -> None:
    message = await _refused(db, APP_SQL, slug=slug, name="App", url=url, hash=digest(slug + url))
    assert constraint in message or "value too long" in message


async def test_app_name_over_1024_is_refused(db: AsyncSession) -> None:
    message = await _refused(db, APP_SQL, slug="ok", name="n" * 1025, url="https://x.example", hash=digest("n"))
    assert "name_length" in message or "value too long" in message


@pytest.mark.parametrize(
    ("price", "currency", "interval", "price_id", "constraint"),
    [
        (-1, "thb", "month", "price_1", "price_not_negative"),
        (100, "eur", "month", "price_1", "currency"),
        (100, "thb", "week", "price_1", "interval"),
        (100, "thb", "month", None, "stripe_price_for_paid_only"),
        (0, "thb", "month", "price_1", "stripe_price_for_paid_only"),
    ],
)
async def test_plan_constraints(
    db: AsyncSession, price: int, currency: str, interval: str, price_id: str | None, constraint: str
) -> None:
    message = await _refused(
        db, PLAN_SQL, slug="p", price=price, currency=currency, interval=interval, price_id=price_id
    )
    assert constraint in message


async def test_duplicate_slugs_and_stripe_ids_are_refused(db: AsyncSession) -> None:
    await db.execute(
        text(PLAN_SQL), {"slug": "dup", "price": 100, "currency": "usd", "interval": "year", "price_id": "price_dup"}
    )
    assert "uq_plans_slug" in await _refused(
        db, PLAN_SQL, slug="dup", price=0, currency="usd", interval="year", price_id=None
    )
    assert "uq_plans_stripe_price_id" in await _refused(
        db, PLAN_SQL, slug="other", price=100, currency="usd", interval="year", price_id="price_dup"
    )


async def test_refunded_amount_cannot_exceed_invoice(db: AsyncSession) -> None:
    await db.execute(text("INSERT INTO customers (external_user_id) VALUES ('u1')"))
    message = await _refused(
        db,
        "INSERT INTO invoices (customer_id, source, stripe_invoice_id, amount_cents, currency, status, "
        "amount_refunded_cents) SELECT id, 'stripe', 'in_1', 100, 'thb', 'paid', 101 FROM customers",
    )
    assert "refunded_within_amount" in message
