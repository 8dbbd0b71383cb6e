"""Dunning (failed renewals, grace, access) and the emails that tell end users about their billing."""
