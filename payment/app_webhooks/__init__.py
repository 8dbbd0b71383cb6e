"""Outgoing webhooks: client apps hear of every change of their users' subscriptions, signed and in order."""
