"""Fixtures for reconciliation tests: the sandbox reset per test and a World to drive it."""

from __future__ import annotations

import pytest

from payment.runtime import Services
from tests.support.stripe import World


@pytest.fixture
def world(services: Services, sandbox: str) -> World:
    return World(services, sandbox)
