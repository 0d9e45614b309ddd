"""Host-selected upstream: `X-Host-Final: api.groq.com` picks an allowed OpenAI-format host."""

from __future__ import annotations

from ..errors import Forbidden
from ..exchange import Exchange
from ..keys import KEY_HEADERS, KeyRing, key_header
from ..pipeline import Planner
from ..plan import upstream_headers
from ..upstream import UpstreamRequest
from .runtime_hosts import RuntimeHosts
from .settings import AllowedHost

HEADER = b"x-host-final"


class HostDecision:
    def __init__(self, host: AllowedHost, ring: KeyRing) -> None:
        self.host = host
        self.ring = ring

    def plan(self, ex: Exchange, below: Planner) -> UpstreamRequest:
        """The client's request as it is, to the chosen host, with that host's key if due."""
        ours = ex.key_kind.ours
        headers = [
            (name, value)
            for name, value in upstream_headers(ex)
            if name != HEADER and not (ours and name in KEY_HEADERS)
        ]
        if ours:
            headers.append(
                key_header(ex.key.header if ex.key else b"authorization", self.ring.next())
            )
        url = self.host.origin.url(ex.raw_upstream_path, ex.query.decode("latin-1"))
        return UpstreamRequest(ex.method, url, headers, ex.body, self.host.host)


class HostSelector:
    """HOST_ALLOWLIST's hosts first, then those the admin added at run time."""

    def __init__(self, hosts: tuple[AllowedHost, ...], runtime: RuntimeHosts) -> None:
        self.hosts = {h.host: HostDecision(h, KeyRing(h.keys)) for h in hosts}
        self.runtime = runtime

    def decide(self, ex: Exchange, host: str) -> HostDecision:
        name = host.lower()
        decision = self.hosts.get(name)
        added = self.runtime.get(name) if decision is None else None
        if added is not None:
            decision = HostDecision(*added)
        if decision is None:
            raise Forbidden(
                f"X-Host-Final: {host!r} is not in HOST_ALLOWLIST; ask the operator to add it "
                "(with its key in HOST_KEYS, or at run time: POST /admin/hosts) or drop the "
                "header",
                code="host_not_allowed",
            )
        if ex.key_kind.ours and not decision.ring:
            raise Forbidden(
                f"X-Host-Final: {host!r} has no key in HOST_KEYS; send your own key for it "
                "or ask the operator to add one",
                code="host_without_key",
            )
        return decision
