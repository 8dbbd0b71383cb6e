"""`payment dev`: the demo app returns to a small page the dev server serves, so "Back to Vega" lands somewhere."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from payment.bootstrap import create_app
from payment.devserver import add_demo_pages
from payment.runtime import Services
from payment.seed import seed_demo
from payment.stripe.gateway import StripeGateway
from tests.support.app import asgi_client, running_services
from tests.support.db import settings_for


async def test_the_demo_apps_return_url_is_served_by_the_dev_server(
    db: AsyncSession, database_url: str, sandbox: str
) -> None:
    settings = settings_for(database_url, stripe_api_base=sandbox, base_url="http://127.0.0.1:8123")
    await seed_demo(db, settings, StripeGateway(settings))
    from payment.apps.service import get_by_slug

    vega = await get_by_slug(db, "vega")
    assert vega is not None and vega.return_url == "http://127.0.0.1:8123/dev/vega/settings"

    async with running_services(settings) as services:
        assert isinstance(services, Services)
        app = create_app(services=services)
        add_demo_pages(app)
        async with asgi_client(app, base_url="http://127.0.0.1:8123") as client:
            page = await client.get("/dev/vega/settings")
    assert page.status_code == 200 and "You are back in the demo app" in page.text
