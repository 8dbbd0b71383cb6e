"""API resources; importing a module registers its routes in `api.ROUTES`."""

from . import catalog, checkout, customers, misc, money, subscriptions

__all__ = ["catalog", "checkout", "customers", "misc", "money", "subscriptions"]
