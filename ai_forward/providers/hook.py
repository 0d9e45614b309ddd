"""Picks a provider for each request and translates to and from it (issue 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import Gateway


def install_providers(gateway: Gateway) -> None:
    """Add this feature's hooks, resources and collaborators to `gateway`."""
