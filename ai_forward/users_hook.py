"""Issued user keys checked on every request (issue 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Gateway


def install_users(gateway: Gateway) -> None:
    """Add this feature's hooks, resources and collaborators to `gateway`."""
