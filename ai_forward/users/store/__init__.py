"""Where users and usage are kept (see `base.py`)."""

from .base import UsageCount, UsageKey, UsageRow, UserExists, UserStore, open_store

__all__ = ["UsageCount", "UsageKey", "UsageRow", "UserExists", "UserStore", "open_store"]
