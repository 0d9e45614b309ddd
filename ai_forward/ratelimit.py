"""RPM and TPM limits on `limits` storage (issue 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Gateway


def install_limits(gateway: Gateway) -> None:
    """Add this feature's hooks, resources and collaborators to `gateway`."""
