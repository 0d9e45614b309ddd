"""Whether a request asks for the cache, and the key of its entry.

The key is the route, the upstream path and query, the client's identity (unless
CACHE_SCOPE=shared) and the body's meaning: its JSON re-serialised with sorted
keys, minus the fields that do not change the answer. Keys are 256-bit BLAKE2b
digests (Python's own, cheaper per call than OpenSSL's SHA-256 on such short
inputs): nothing a client sent, and no key, is ever stored in the clear.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..exchange import Exchange
from ..keys import KeyKind
from .settings import CacheSettings

HEADER = b"x-aifd-cache"
# Path endings answered from the cache, in match order (chat before plain completions).
KINDS = (
    ("/chat/completions", "chat"),
    ("/completions", "completion"),
    ("/embeddings", "embedding"),
    ("/responses", "response"),
)
# Fields that change how an answer is delivered or billed, not what it says.
IGNORED = frozenset({"stream", "stream_options", "caching", "user"})
_YES = frozenset({b"true", b"1", b"yes", b"on"})
_KIND = {kind: kind.value + ":" for kind in KeyKind}


def endpoint_kind(ex: Exchange) -> str | None:
    """chat, completion, embedding or response; None for what the cache never answers."""
    if ex.method != "POST":
        return None
    path = ex.upstream_path
    for ending, kind in KINDS:
        if path.endswith(ending):
            return kind
    return None


def wants_cache(ex: Exchange, settings: CacheSettings) -> bool:
    """The client's choice (header, then the body's `caching`), else the route's default.

    A `caching` field is removed from the body either way: it means nothing upstream.
    The body is parsed only when its bytes hold `"caching"` or the route caches by default.
    """
    header = ex.header(HEADER)
    choice = None
    if header is not None:  # the gateway's own header: the upstream never sees it
        choice = header.strip().lower() in _YES
        ex.headers = [(name, value) for name, value in ex.headers if name != HEADER]
    if b'"caching"' in ex.body:
        body = ex.json()
        if body is not None and "caching" in body:
            asked = body["caching"]
            ex.replace_json({k: v for k, v in body.items() if k != "caching"})
            if choice is None:
                choice = asked is True
    if choice is None:
        routes = settings.routes
        choice = settings.default and (ex.path in routes or ex.upstream_path in routes)
    return choice


def identity(ex: Exchange) -> str:
    """Who may see an entry: the issued user, else a hash of the key presented, else the IP."""
    if ex.principal is not None:
        return "user:" + ex.principal.name
    if ex.key is not None:
        digest = hashlib.blake2b(ex.key.value.encode(), digest_size=32).hexdigest()
        return _KIND[ex.key_kind] + digest
    return "ip:" + ex.client_ip


def cache_key(ex: Exchange, body: dict[str, Any], shared: bool) -> str:
    if not IGNORED.isdisjoint(body):
        body = {k: v for k, v in body.items() if k not in IGNORED}
    meaning = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    who = "shared" if shared else identity(ex)
    query = ex.query.decode("latin-1")
    about = f"{ex.route.name}\0{ex.upstream_path}\0{query}\0{who}\0".encode()
    return hashlib.blake2b(about + meaning, digest_size=32).hexdigest()
