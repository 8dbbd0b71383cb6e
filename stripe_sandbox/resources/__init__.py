"""API resources; importing a module registers its routes in `api.ROUTES`."""

from . import catalog, checkout, customers, misc, money, previews, schedules, subscriptions

__all__ = ["catalog", "checkout", "customers", "misc", "money", "previews", "schedules", "subscriptions"]
