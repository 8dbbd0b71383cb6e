"""Admin: dashboard (filled in by its issue)."""

from __future__ import annotations

from sqladmin import Admin

from payment.runtime import Services


def register(admin: Admin, services: Services) -> None:
    """Add this module's views to the admin."""
