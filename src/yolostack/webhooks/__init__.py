"""Outbound webhooks: an account's subscriptions to platform events, delivered signed and retried."""
