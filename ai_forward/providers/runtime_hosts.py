"""Hosts X-Host-Final may name that the admin added at run time (`/admin/hosts`,
`aifd hosts add`), as this process last read them from the user store.

The users feature keeps the table current (it owns the store and hears of every
change); the host selector only reads it. Hosts from HOST_ALLOWLIST come first: a
runtime host of the same name is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..keys import KeyRing
from .settings import AllowedHost


class RuntimeHosts:
    """Host name -> (the host, a key ring kept across reloads while its keys stay)."""

    def __init__(self) -> None:
        self._hosts: dict[str, tuple[AllowedHost, KeyRing]] = {}

    def __len__(self) -> int:
        return len(self._hosts)

    def get(self, host: str) -> tuple[AllowedHost, KeyRing] | None:
        return self._hosts.get(host)

    def replace(self, hosts: Iterable[AllowedHost]) -> None:
        """Take `hosts` as the whole table; a host whose keys did not change keeps its ring."""
        table: dict[str, tuple[AllowedHost, KeyRing]] = {}
        for host in hosts:
            held = self._hosts.get(host.host)
            same = held is not None and held[0] == host
            table[host.host] = held if same and held is not None else (host, KeyRing(host.keys))
        self._hosts = table
