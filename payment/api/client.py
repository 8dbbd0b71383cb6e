"""The client API under /api/v1: billing sessions and entitlements (issue 5)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
