"""API resources; importing a module registers its routes in `api.ROUTES`."""

from . import catalog, checkout, coupons, customers, misc, money, subscriptions

__all__ = ["catalog", "checkout", "coupons", "customers", "misc", "money", "subscriptions"]
