"""Whether a request asks for the cache, and the key of its entry.

The key is the route, the upstream path and query, the client's identity (unless
CACHE_SCOPE=shared) and the body's meaning: its JSON re-serialised with sorted
keys, minus the fields that do not change the answer. Keys are 256-bit BLAKE2b
digests (Python's own, cheaper per call than OpenSSL's SHA-256 on such short
inputs): nothing a client sent, and no key, is ever stored in the clear.

Clients repeat the very same bytes (that is what a cache is for), so the key of a
body seen before is remembered (`CacheKeys`): a repeat costs one dictionary lookup,
not a parse, a sorted re-serialisation and a digest. What is remembered is exactly
what the key is computed from, so a remembered key is the key.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import orjson

from ..body import is_form
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
# Bounds of what `CacheKeys` remembers (bodies are its bulk); past them it starts anew.
MEMO_ENTRIES = 1024
MEMO_BYTES = 4 * 1024 * 1024
MEMO_ONE = 64 * 1024  # a bigger body is keyed anew each time (its parse dwarfs the rest)


class Lookup(NamedTuple):
    """The entry a request wants, and in which form: what a kept answer is filed under."""

    key: str
    streamed: bool
    usage: bool  # a stream with its usage chunk (`stream_options.include_usage`)


def endpoint_kind(path: str) -> str | None:
    """chat, completion, embedding or response; None for what the cache never answers."""
    for ending, kind in KINDS:
        if path.endswith(ending):
            return kind
    return None


def wants_cache(ex: Exchange, settings: CacheSettings) -> bool:
    """The client's choice (header, then the body's `caching`), else the route's default;
    never for a multipart form (its body is not JSON).

    A `caching` field is removed from the body either way: it means nothing upstream.
    The body is parsed only when its bytes hold `"caching"`: a request that does not
    opt in costs a header scan and a search of its bytes.
    """
    choice = None
    form = False
    for name, value in ex.headers:
        if name == HEADER:  # the gateway's own header: the upstream never sees it
            choice = value.strip().lower() in _YES
        elif name == b"content-type":
            form = is_form(value)
    if choice is not None:
        ex.headers = [(name, value) for name, value in ex.headers if name != HEADER]
    if form:
        return False
    # `find`, not `in`: `bytes in bytes` first tries the needle as an int, raising inside.
    if ex.body.find(b'"caching"') >= 0:
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


class CacheKeys:
    """Computes keys, and remembers those of the bodies it saw last (bounded)."""

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self._seen: dict[tuple[bytes, str, str, bytes, str], Lookup] = {}
        self._seen_bytes = 0
        self._kinds: dict[str, str | None] = {}
        # Forward keys only: the process holds them anyway; a client's own key is not kept.
        self._forward: dict[str, str] = {}

    def kind(self, ex: Exchange) -> str | None:
        """`endpoint_kind` of a POST, remembered per path; None for any other method."""
        if ex.method != "POST":
            return None
        path = ex.upstream_path
        kinds = self._kinds
        if path in kinds:
            return kinds[path]
        if len(kinds) >= MEMO_ENTRIES:
            kinds.clear()
        kind = kinds[path] = endpoint_kind(path)
        return kind

    def lookup(self, ex: Exchange) -> Lookup | None:
        """The key and form this request wants; None if its body is not a JSON object.

        For a request `wants_cache` said yes to (never a form, whose bytes are not JSON)."""
        body = ex.body
        who = "shared" if self.shared else self.identity(ex)
        seen = (body, ex.route.name, ex.upstream_path, ex.query, who)
        found = self._seen.get(seen)
        if found is not None:
            return found
        parsed = ex.json()
        if parsed is None:
            return None
        found = Lookup(cache_key(ex, parsed, who), *form_of(parsed))
        if len(body) <= MEMO_ONE:
            if len(self._seen) >= MEMO_ENTRIES or self._seen_bytes > MEMO_BYTES:
                self._seen.clear()
                self._seen_bytes = 0
            self._seen[seen] = found
            self._seen_bytes += len(body)
        return found

    def identity(self, ex: Exchange) -> str:
        """Who may see an entry: the issued user, else a hash of the key presented, else the IP."""
        if ex.principal is not None:
            return "user:" + ex.principal.name
        key = ex.key
        if key is None:
            return "ip:" + ex.client_ip
        if ex.key_kind is not KeyKind.FORWARD:
            return key_identity(ex.key_kind, key.value)
        who = self._forward.get(key.value)
        if who is None:
            if len(self._forward) >= MEMO_ENTRIES:
                self._forward.clear()
            who = self._forward[key.value] = key_identity(ex.key_kind, key.value)
        return who


def key_identity(kind: KeyKind, value: str) -> str:
    return _KIND[kind] + hashlib.blake2b(value.encode(), digest_size=32).hexdigest()


def form_of(body: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the request wants a stream, and one with its usage."""
    streamed = body.get("stream") is True
    options = body.get("stream_options")
    usage = streamed and isinstance(options, dict) and options.get("include_usage") is True
    return streamed, usage


def cache_key(ex: Exchange, body: dict[str, Any], who: str) -> str:
    if not IGNORED.isdisjoint(body):
        body = {k: v for k, v in body.items() if k not in IGNORED}
    meaning = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    query = ex.query.decode("latin-1")
    about = f"{ex.route.name}\0{ex.upstream_path}\0{query}\0{who}\0".encode()
    return hashlib.blake2b(about + meaning, digest_size=32).hexdigest()
