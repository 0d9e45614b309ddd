"""Where users and usage are kept (see `base.py`)."""

from .base import (
    HOSTS_CHANGED,
    RuntimeHost,
    UsageCount,
    UsageKey,
    UsageRow,
    UserExists,
    UserStore,
    open_store,
)

__all__ = [
    "HOSTS_CHANGED",
    "RuntimeHost",
    "UsageCount",
    "UsageKey",
    "UsageRow",
    "UserExists",
    "UserStore",
    "open_store",
]
