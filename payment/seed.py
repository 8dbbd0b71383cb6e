"""Seeding: the default admin (every environment) and the demo app, its plans and a promotion code (`payment dev`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins import service as admins
from payment.apps import service as apps
from payment.audit.service import SYSTEM
from payment.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Settings
from payment.db import Database
from payment.errors import ConfigError, StripeError
from payment.models import App, PromotionCode
from payment.plans.service import PlanInput, get_by_slug, upsert_plan
from payment.promotions import service as promotions
from payment.promotions.service import CouponInput
from payment.stripe.gateway import StripeGateway

DEMO_APP_SLUG = "vega"


def admin_credentials(settings: Settings) -> tuple[str, str]:
    """ADMIN_EMAIL/ADMIN_PASSWORD; development falls back to the documented demo credentials."""
    email, password = settings.admin_email, settings.admin_password
    if settings.is_deployed and (email is None or password is None):
        raise ConfigError("db:seed needs ADMIN_EMAIL and ADMIN_PASSWORD")
    return email or DEV_ADMIN_EMAIL, password or DEV_ADMIN_PASSWORD


async def seed_admin(session: AsyncSession, settings: Settings) -> admins.SeedResult:
    email, password = admin_credentials(settings)
    return await admins.seed_default_admin(session, email=email, password=password, actor=SYSTEM)


@dataclass(frozen=True)
class DemoPlan:
    """A paid plan of the demo catalogue and its price in the sandbox (plans of one product share it)."""

    slug: str
    name: str
    price_cents: int
    interval: str
    product: str
    lookup_key: str
    sort_order: int
    features: tuple[str, ...]
    trial_days: int = 0


DEMO_PLANS = (
    DemoPlan(
        "pro",
        "Pro",
        29900,
        "month",
        "pro",
        "aquoris-pro-monthly",
        10,
        ("Everything in Free", "Unlimited projects", "Priority support"),
    ),
    DemoPlan(
        "pro-yearly",
        "Pro yearly",
        299000,
        "year",
        "pro",
        "aquoris-pro-yearly",
        20,
        ("Everything in Pro", "Two months free"),
    ),
    DemoPlan(
        "team",
        "Team",
        99000,
        "month",
        "team",
        "aquoris-team-monthly",
        30,
        ("Everything in Pro", "Up to 10 members", "Shared billing"),
        trial_days=14,
    ),
)
DEMO_PRODUCTS = {"pro": "Aquoris Pro", "team": "Aquoris Team"}
DEMO_CODE = "VEGA20"
DEMO_CODE_PERCENT = Decimal(20)


@dataclass(frozen=True)
class DemoData:
    app_slug: str
    api_key: str
    plans: list[str]
    promotion_code: str


async def _sandbox_prices(gateway: StripeGateway, existing: dict[str, str | None]) -> dict[str, str]:
    """The demo plans' prices in the sandbox, by plan slug: the stored ones it still knows, the others created (a
    plan's product is the one its sibling's price already names, so monthly and yearly Pro stay one product)."""
    prices: dict[str, str] = {}
    products: dict[str, str] = {}
    for plan in DEMO_PLANS:
        price_id = existing.get(plan.slug)
        if price_id is None:
            continue
        try:
            price = await gateway.retrieve_price(price_id)
        except StripeError:
            continue  # the sandbox was reset: made again below
        prices[plan.slug] = price_id
        products.setdefault(plan.product, str(price["product"]))
    for plan in DEMO_PLANS:
        if plan.slug in prices:
            continue
        if plan.product not in products:
            made = await gateway.create_product({"name": DEMO_PRODUCTS[plan.product], "metadata": {"plan": plan.slug}})
            products[plan.product] = str(made["id"])
        price = await gateway.create_price(
            {
                "product": products[plan.product],
                "unit_amount": plan.price_cents,
                "currency": "thb",
                "recurring": {"interval": plan.interval},
                "lookup_key": plan.lookup_key,
                "transfer_lookup_key": True,
            }
        )
        prices[plan.slug] = str(price["id"])
    return prices


DEMO_RETURN_PATH = "/dev/vega/settings"


def demo_return_url(settings: Settings) -> str:
    """Where "Back to Vega" leads in development: a small page the dev server itself serves."""
    return settings.base_url.rstrip("/") + DEMO_RETURN_PATH


async def _demo_app(session: AsyncSession, settings: Settings) -> tuple[App, str]:
    app = await apps.get_by_slug(session, DEMO_APP_SLUG)
    if app is None:
        issued = await apps.create_app(
            session,
            slug=DEMO_APP_SLUG,
            name="Vega",
            return_url=demo_return_url(settings),
            secret_key=settings.secret_key,
            actor=SYSTEM,
        )
        return issued.app, issued.api_key
    revealed = apps.reveal_key(app, settings.secret_key)
    if revealed is None:  # SECRET_KEY changed since: issue a fresh key
        revealed = (await apps.rotate_key(session, app, secret_key=settings.secret_key, actor=SYSTEM)).api_key
    return app, revealed


async def seed_demo(db: Database, settings: Settings, gateway: StripeGateway) -> DemoData:
    """The demo app `vega` with a small catalogue (free; Pro 299.00 THB a month or 2,990.00 a year, one product;
    Team 990.00 a month with a 14-day trial) and the promotion code VEGA20 (20% off, once), made through the
    promotions service as an admin would, so it exists at the sandbox too. Idempotent; the sandbox is called
    outside any transaction."""
    async with db.session() as session:
        existing = {plan.slug: (await get_by_slug(session, plan.slug)) for plan in DEMO_PLANS}
    prices = await _sandbox_prices(gateway, {slug: p.stripe_price_id if p else None for slug, p in existing.items()})
    async with db.transaction() as session:
        app, api_key = await _demo_app(session, settings)
        app_id = app.id
        await upsert_plan(
            session,
            PlanInput(
                slug="free",
                name="Aquoris Free",
                price_cents=0,
                currency="thb",
                interval="month",
                sort_order=0,
                features=["Core features", "Community support"],
            ),
            actor=SYSTEM,
        )
        for plan in DEMO_PLANS:
            await upsert_plan(
                session,
                PlanInput(
                    slug=plan.slug,
                    name=plan.name,
                    price_cents=plan.price_cents,
                    currency="thb",
                    interval=plan.interval,
                    stripe_price_id=prices[plan.slug],
                    sort_order=plan.sort_order,
                    features=list(plan.features),
                    app_id=app_id,
                    trial_days=plan.trial_days,
                ),
                actor=SYSTEM,
            )
        has_code = await session.scalar(
            select(PromotionCode.id).where(func.lower(PromotionCode.code) == DEMO_CODE.lower())
        )
    if has_code is None:
        await promotions.create_coupon(
            db,
            gateway,
            CouponInput(
                name="Vega 20% off",
                duration="once",
                percent_off=DEMO_CODE_PERCENT,
                app_id=app_id,
                code=DEMO_CODE,
            ),
            request_key=f"demo-{DEMO_APP_SLUG}-{DEMO_CODE.lower()}",
            actor=SYSTEM,
        )
    return DemoData(
        app_slug=DEMO_APP_SLUG,
        api_key=api_key,
        plans=["free", *(plan.slug for plan in DEMO_PLANS)],
        promotion_code=DEMO_CODE,
    )
