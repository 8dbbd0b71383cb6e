"""The dashboard's tests share one committed data set per module (the cards read it on their own connections)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from admin_views.dashboard import DashboardState
from payment.config import Settings
from payment.runtime import Services
from tests.integration.dashboard import dataset
from tests.support import factories
from tests.support.db import settings_for

ADMIN_PASSWORD = "dashboard-admin-pw"


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    """The dashboard calls no Stripe API, so these tests do without the sandbox."""
    return settings_for(database_url)


@pytest.fixture(scope="module")
async def known_data(services: Services) -> dict[str, Any]:
    """The hand-computed data set of tests/dashboard/dataset.py, committed, and a signed-up admin."""
    async with services.db.transaction() as session:
        subs = await dataset.build(session)
        admin = await factories.create_admin(session, password=ADMIN_PASSWORD)
    return {"subs": subs, "admin_email": admin.email}


def dashboard_state(app: Starlette) -> DashboardState:
    """The dashboard's state on the admin sub-app of a whole app."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    state = mount.app.state.dashboard  # type: ignore[attr-defined]
    assert isinstance(state, DashboardState)
    return state


async def sign_in(client: httpx.AsyncClient, email: str, password: str = ADMIN_PASSWORD) -> None:
    """Sign in through the admin's login form (with its CSRF field when the form has one)."""
    form = await client.get("/admin/login")
    data = {"username": email, "password": password}
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token:
        data["csrf_token"] = token.group(1)
    response = await client.post("/admin/login", data=data)
    assert response.status_code in (302, 303), response.text[:500]
