"""Reconciliation: find where our books differ from Stripe's (compare, check), and let an admin settle each
difference (service)."""
