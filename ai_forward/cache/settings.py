"""CACHE_*: which requests the cache answers, where entries live and for how long."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from ..env import EnvReader, Setting, SettingsError, table

CACHE_BACKEND = Setting(
    "CACHE_BACKEND", "memory", "where answers are cached: memory, sqlite:///path.db or redis://"
)
CACHE_ROUTES: Setting[frozenset[str]] = Setting(
    "CACHE_ROUTES", frozenset(), "paths cached by default, JSON list or comma-separated", ""
)
DEFAULT_REQUEST_CACHING_VALUE = Setting(
    "DEFAULT_REQUEST_CACHING_VALUE", False, "cache CACHE_ROUTES requests that do not say"
)
CACHE_TTL = Setting(
    "CACHE_TTL", 86400.0, "seconds an answer stays cached (0: until pushed out or cleared)"
)
CACHE_MAX_BYTES = Setting(
    "CACHE_MAX_BYTES",
    64 * 1000**2,
    "bound of the memory backend; least recently used go first",
    "64MB",
)
CACHE_SCOPE = Setting(
    "CACHE_SCOPE", "client", "client: entries per user or key; shared: one cache for all"
)
CACHE_WAIT = Setting("CACHE_WAIT", 30.0, "seconds an identical request waits for one in flight")
DOC = table(
    CACHE_BACKEND,
    CACHE_ROUTES,
    DEFAULT_REQUEST_CACHING_VALUE,
    CACHE_TTL,
    CACHE_MAX_BYTES,
    CACHE_SCOPE,
    CACHE_WAIT,
)

DEFAULT_FILE = "sqlite:///aifd-cache.db"
# openai-forward's backend names, and ours for them.
FOREIGN_BACKENDS = {"lmdb": DEFAULT_FILE, "leveldb": DEFAULT_FILE}


@dataclass(frozen=True)
class CacheSettings:
    """Validated at start-up; read-only afterwards."""

    backend: str = CACHE_BACKEND.default
    routes: frozenset[str] = CACHE_ROUTES.default
    default: bool = DEFAULT_REQUEST_CACHING_VALUE.default
    ttl: float = CACHE_TTL.default
    max_bytes: int = CACHE_MAX_BYTES.default
    shared: bool = False
    wait: float = CACHE_WAIT.default
    note: str | None = None  # said once at start-up (an openai-forward value mapped to ours)


def read_cache_settings(reader: EnvReader) -> CacheSettings:
    backend, note = read_backend(reader.text(CACHE_BACKEND.name, CACHE_BACKEND.default))
    scope = reader.text(CACHE_SCOPE.name, CACHE_SCOPE.default).lower()
    if scope not in ("client", "shared"):
        raise SettingsError(f"CACHE_SCOPE={scope!r}: expected client (the default) or shared")
    flag = DEFAULT_REQUEST_CACHING_VALUE
    return CacheSettings(
        backend=backend,
        routes=read_routes(reader.raw(CACHE_ROUTES.name)),
        default=reader.flag(flag.name, flag.default),
        ttl=reader.number(CACHE_TTL.name, CACHE_TTL.default, minimum=0.0),
        max_bytes=reader.size(CACHE_MAX_BYTES.name, CACHE_MAX_BYTES.default),
        shared=scope == "shared",
        wait=reader.number(CACHE_WAIT.name, CACHE_WAIT.default, minimum=0.0),
        note=note,
    )


def read_backend(value: str) -> tuple[str, str | None]:
    lowered = value.lower()
    if lowered == "memory":
        return "memory", None
    if lowered in FOREIGN_BACKENDS:
        ours = FOREIGN_BACKENDS[lowered]
        return ours, f"CACHE_BACKEND={value} is openai-forward's; ai-forward uses {ours} for it"
    if lowered == "sqlite":
        return DEFAULT_FILE, None
    parts = urlsplit(value)
    if parts.scheme == "sqlite" and not parts.netloc and parts.path.strip("/"):
        return value, None
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return value, None
    raise SettingsError(
        f"CACHE_BACKEND={value!r}: expected memory, sqlite:///path.db (kept across restarts) "
        f"or redis://host:6379/0 (shared by instances)"
    )


def read_routes(value: str | None) -> frozenset[str]:
    """openai-forward's JSON list (["/v1/chat/completions"]), or a comma-separated list."""
    if value is None:
        return frozenset()
    items: object
    if value.startswith("["):
        try:
            items = orjson.loads(value)
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SettingsError(
                f"CACHE_ROUTES={value!r}: expected a JSON list of paths such as "
                f'["/v1/chat/completions","/v1/embeddings"], or paths separated by commas'
            )
    else:
        items = value.split(",")
    paths = {"/" + str(item).strip().strip("/") for item in items if str(item).strip()}
    return frozenset(paths)
