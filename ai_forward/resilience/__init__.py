"""Retries, key rotation on refusals and key cooldown around the upstream call."""
