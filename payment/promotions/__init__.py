"""Coupons and promotion codes admins create, mirrored at Stripe."""
