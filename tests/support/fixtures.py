"""Shared fixtures built on the database harness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from payment.bootstrap import create_app
from payment.config import Settings
from payment.runtime import Services
from tests.support.app import ThreadServer, asgi_client, running_services
from tests.support.db import settings_for


@pytest.fixture(scope="module")
def settings(database_url: str, sandbox_server: ThreadServer) -> Settings:
    """This module's database, and the Stripe sandbox as Stripe."""
    return settings_for(database_url, stripe_api_base=sandbox_server.url)


@pytest.fixture(scope="module")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with running_services(settings) as services:
        yield services


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app over ASGI, on this module's database."""
    async with asgi_client(create_app(services=services)) as client:
        yield client
