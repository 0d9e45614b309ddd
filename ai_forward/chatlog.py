"""Chat records written off the event loop (issue 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Gateway


def install_chatlog(gateway: Gateway) -> None:
    """Add this feature's hooks, resources and collaborators to `gateway`."""
