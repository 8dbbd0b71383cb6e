"""Fixtures for dunning and notices: a loopback SMTP server and this module's services pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from payment.config import Settings
from payment.runtime import Services
from tests.integration.dunning.mailbox import SmtpServer
from tests.support.app import ThreadServer, running_services
from tests.support.db import settings_for


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def settings(database_url: str, sandbox_server: ThreadServer, smtp_server: SmtpServer) -> Settings:
    return settings_for(
        database_url, stripe_api_base=sandbox_server.url, smtp_url=smtp_server.url, email_retry_base_ms=50
    )


@pytest.fixture(scope="module")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with running_services(settings) as services:
        yield services
