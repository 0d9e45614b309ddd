"""The passthrough plan: the client's request as it goes to the route's upstream (hop-by-hop
headers dropped, the key swapped when due, X-Forwarded-For added), and the upstream's
headers as they come back to the client."""

from __future__ import annotations

from collections.abc import Sequence

from .exchange import Exchange
from .keys import KEY_HEADERS, key_header
from .types import Headers
from .upstream import UpstreamRequest

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_UPSTREAM = HOP_BY_HOP | {b"host", b"content-length", b"expect", b"x-forwarded-for"}
# The upstream's Date goes through: servers run with date_header=False add none of their own.
_NOT_DOWNSTREAM = HOP_BY_HOP | {b"server"}
_NOT_DOWNSTREAM_NOR_LENGTH = _NOT_DOWNSTREAM | {b"content-length"}


def plan_passthrough(ex: Exchange) -> UpstreamRequest:
    """The client's request, sent as it is to the route's upstream (key swapped if due)."""
    url = ex.route.origin.url(ex.raw_upstream_path, ex.query.decode("latin-1"))
    return UpstreamRequest(ex.method, url, upstream_headers(ex), ex.body, ex.route.name)


def upstream_headers(ex: Exchange) -> Headers:
    swap = ex.key_kind.ours
    headers = [
        (name, value)
        for name, value in ex.headers
        if name not in _NOT_UPSTREAM and not (swap and name in KEY_HEADERS)
    ]
    if ex.real_key is not None:
        headers.append(key_header(ex.key.header if ex.key else b"authorization", ex.real_key))
    forwarded = ex.header(b"x-forwarded-for")
    # The socket peer, not ex.client_ip: a client IP found in a trusted chain is already in it.
    peer = ex.scope.get("client")
    ip = (peer[0] if peer else ex.client_ip).encode()
    headers.append((b"x-forwarded-for", forwarded + b", " + ip if forwarded else ip))
    if ex.observe or ex.observe_usage or ex.observe_tokens:
        headers = [(n, v) for n, v in headers if n != b"accept-encoding"]
        headers.append((b"accept-encoding", b"identity"))
    return headers


def downstream_headers(raw: Sequence[tuple[bytes, bytes]], keep_length: bool) -> Headers:
    skip = _NOT_DOWNSTREAM if keep_length else _NOT_DOWNSTREAM_NOR_LENGTH
    headers = []
    for name, value in raw:
        name = name.lower()
        if name not in skip:
            headers.append((name, value))
    return headers


def with_hook_headers(headers: Headers, ex: Exchange) -> Headers:
    """`headers` of an answer, the hooks' own values (`ex.response_headers`) replacing any
    of the same name."""
    if not ex.response_headers:
        return headers
    ours = {name for name, _ in ex.response_headers}
    return [h for h in headers if h[0] not in ours] + ex.response_headers
