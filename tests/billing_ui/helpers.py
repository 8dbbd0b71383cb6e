"""Setting the scene for billing page tests: apps, plans with sandbox prices, billing links opened through the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count

import httpx

from payment.models import App, Plan
from payment.runtime import Services
from tests.support import factories
from tests.support.stripe import SANDBOX_KEY

_n = count(1)


@dataclass(frozen=True)
class Scene:
    app: App
    api_key: str
    other_app: App
    free: Plan
    pro: Plan
    yearly_usd: Plan
    other_apps_plan: Plan
    retired: Plan


def reset_sandbox(sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/reset", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}).raise_for_status()


async def sandbox_call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """A request to the sandbox as Stripe's dashboard or test controls would make it."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {SANDBOX_KEY}"}) as http:
        response = await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    response.raise_for_status()
    return response


async def sandbox_price(services: Services, name: str, amount: int, currency: str, interval: str = "month") -> str:
    product = await services.stripe.create_product({"name": name})
    price = await services.stripe.create_price(
        {"product": product["id"], "unit_amount": amount, "currency": currency, "recurring": {"interval": interval}}
    )
    return str(price["id"])


async def build_scene(services: Services, *, slug: str = "vega") -> Scene:
    """Vega with free, pro (299 THB a month), team (19.99 USD a year, Vega only), and plans Vega must not show."""
    pro_price = await sandbox_price(services, "Aquoris PRO", 29900, "thb")
    team_price = await sandbox_price(services, "Vega Team", 1999, "usd", "year")
    other_price = await sandbox_price(services, "Orion Max", 50000, "thb")
    retired_price = await sandbox_price(services, "Old", 10000, "thb")
    async with services.db.transaction() as session:
        app, key = await factories.create_app(
            session, slug=slug, name="Vega", return_url="https://vega.example.com/settings"
        )
        other, _ = await factories.create_app(session, slug=f"orion-{next(_n)}", name="Orion")
        free = await factories.create_plan(
            session, slug="free", name="Aquoris Free", price_cents=0, sort_order=0, features=["Core features"]
        )
        pro = await factories.create_plan(
            session,
            slug="pro",
            name="Aquoris PRO",
            price_cents=29900,
            stripe_price_id=pro_price,
            sort_order=10,
            features=["Everything in Free", "Unlimited projects"],
        )
        team = await factories.create_plan(
            session,
            slug="vega-team",
            name="Vega Team",
            price_cents=1999,
            currency="usd",
            interval="year",
            stripe_price_id=team_price,
            app_id=app.id,
            sort_order=20,
        )
        other_plan = await factories.create_plan(
            session,
            slug="orion-max",
            name="Orion Max",
            price_cents=50000,
            stripe_price_id=other_price,
            app_id=other.id,
            sort_order=5,
        )
        retired = await factories.create_plan(
            session,
            slug="retired",
            name="Retired Plan",
            price_cents=10000,
            stripe_price_id=retired_price,
            active=False,
            sort_order=1,
        )
    return Scene(app, key, other, free, pro, team, other_plan, retired)


async def open_billing(
    client: httpx.AsyncClient, scene: Scene, user: str | None = None, **extra: str
) -> tuple[str, str]:
    """A billing link for a (new) user through the client API: (path of the page, externalUserId)."""
    user = user or f"user-{next(_n)}"
    response = await client.post(
        "/api/v1/sessions",
        json={"externalUserId": user, "appSlug": scene.app.slug, **extra},
        headers={"Authorization": f"Bearer {scene.api_key}"},
    )
    assert response.status_code == 201, response.text
    return httpx.URL(response.json()["url"]).path, user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def text_of(html: str) -> str:
    """The page's visible words, tags stripped and spaces collapsed (for asserting on what a user reads)."""
    without_tags = re.sub(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", " ", html, flags=re.S)
    import html as html_lib

    return re.sub(r"[ \t\r\n]+", " ", html_lib.unescape(without_tags)).strip()
