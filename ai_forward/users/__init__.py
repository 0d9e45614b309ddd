"""Issued user keys: their store, the check on each request, usage, /admin, `aifd users`."""
