"""Billing sessions: short-lived links from a client app to the hosted billing page."""
