"""Setting the scene for billing page tests: apps, plans with sandbox prices, billing links opened through the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count

import httpx

from payment.models import App, Plan
from payment.runtime import Services
from tests.support import factories
from tests.support.stripe import stripe_price

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


async def build_scene(services: Services, *, slug: str = "vega") -> Scene:
    """Vega with free, pro (299 THB a month), team (19.99 USD a year, Vega only), and plans Vega must not show."""
    pro_price = await stripe_price(services.stripe, name="Aquoris PRO", amount=29900)
    team_price = await stripe_price(services.stripe, name="Vega Team", amount=1999, currency="usd", interval="year")
    other_price = await stripe_price(services.stripe, name="Orion Max", amount=50000)
    retired_price = await stripe_price(services.stripe, name="Old", amount=10000)
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
