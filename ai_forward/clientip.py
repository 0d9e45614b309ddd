"""Who is calling: the client IP (X-Forwarded-For only from trusted proxies), and IP lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from .env import IPNetwork
from .errors import Forbidden
from .exchange import BeforeOnly, Exchange
from .pipeline import NOTHING, Contribution, Shared
from .settings import ClientIPSettings, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def listed(address: IPAddress | None, networks: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(peer: str, forwarded: bytes | None, trusted: Sequence[IPNetwork]) -> str:
    """The client's IP: the socket peer, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not itself a trusted proxy."""
    if forwarded is None or not trusted or not listed(parse_ip(peer), trusted):
        return peer
    hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return peer  # a malformed chain says nothing we can trust
        if not listed(address, trusted):
            return str(address)
    first = parse_ip(hops[0]) if hops else None
    return str(first) if first is not None else peer


class ClientIPHook(BeforeOnly):
    """Sets `ex.client_ip` from the socket and trusted proxies; enforces IP lists (403)."""

    def __init__(self, settings: ClientIPSettings) -> None:
        self.allowed = settings.ip_whitelist
        self.denied = settings.ip_blacklist
        self.trusted = settings.trusted_proxies

    async def before(self, ex: Exchange) -> None:
        if self.trusted:
            ex.client_ip = client_address(ex.client_ip, ex.header(b"x-forwarded-for"), self.trusted)
        if not (self.allowed or self.denied):
            return
        address = parse_ip(ex.client_ip)
        if listed(address, self.denied):
            raise Forbidden(
                f"requests from {ex.client_ip} are refused by this gateway (IP_BLACKLIST)",
                code="ip_forbidden",
            )
        if self.allowed and not listed(address, self.allowed):
            raise Forbidden(
                f"{ex.client_ip} is not in this gateway's IP_WHITELIST; ask its operator "
                f"to add your address",
                code="ip_forbidden",
            )


def install(settings: Settings, shared: Shared) -> Contribution:
    """The client-IP step, when IP lists or trusted proxies are configured."""
    if not settings.client_ip.active:
        return NOTHING
    return Contribution(hooks=(ClientIPHook(settings.client_ip),))
