"""API resources; importing a module registers its routes in `api.ROUTES`."""

from . import catalog, checkout, coupons, customers, invoice_pay, misc, money, previews, schedules, subscriptions

__all__ = [
    "catalog",
    "checkout",
    "coupons",
    "customers",
    "invoice_pay",
    "misc",
    "money",
    "previews",
    "schedules",
    "subscriptions",
]
