"""Seeding: the default admin (every environment) and the demo app and plans (`payment dev`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins import service as admins
from payment.apps import service as apps
from payment.audit.service import SYSTEM
from payment.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Settings
from payment.errors import ConfigError, StripeError
from payment.plans.service import PlanInput, get_by_slug, upsert_plan
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
class DemoData:
    app_slug: str
    api_key: str
    plans: list[str]


async def _sandbox_price(gateway: StripeGateway, existing: str | None) -> str:
    """The pro plan's price in the sandbox; recreated when the sandbox no longer knows it."""
    if existing is not None:
        try:
            await gateway.retrieve_price(existing)
            return existing
        except StripeError:
            pass
    product = await gateway.create_product({"name": "Aquoris PRO", "metadata": {"plan": "pro"}})
    price = await gateway.create_price(
        {
            "product": product["id"],
            "unit_amount": 29900,
            "currency": "thb",
            "recurring": {"interval": "month"},
            "lookup_key": "aquoris-pro-monthly",
        }
    )
    return str(price["id"])


DEMO_RETURN_PATH = "/dev/vega/settings"


def demo_return_url(settings: Settings) -> str:
    """Where "Back to Vega" leads in development: a small page the dev server itself serves."""
    return settings.base_url.rstrip("/") + DEMO_RETURN_PATH


async def seed_demo(session: AsyncSession, settings: Settings, gateway: StripeGateway) -> DemoData:
    """The demo app `vega` and the plans free and pro (29900 thb a month); idempotent."""
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
        app, api_key = issued.app, issued.api_key
    else:
        revealed = apps.reveal_key(app, settings.secret_key)
        if revealed is None:  # SECRET_KEY changed since: issue a fresh key
            revealed = (await apps.rotate_key(session, app, secret_key=settings.secret_key, actor=SYSTEM)).api_key
        api_key = revealed
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
    pro = await get_by_slug(session, "pro")
    price_id = await _sandbox_price(gateway, pro.stripe_price_id if pro else None)
    await upsert_plan(
        session,
        PlanInput(
            slug="pro",
            name="Aquoris PRO",
            price_cents=29900,
            currency="thb",
            interval="month",
            stripe_price_id=price_id,
            sort_order=10,
            features=["Everything in Free", "Unlimited projects", "Priority support"],
        ),
        actor=SYSTEM,
    )
    return DemoData(app_slug=DEMO_APP_SLUG, api_key=api_key, plans=["free", "pro"])
