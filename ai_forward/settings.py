"""Settings: built once at start-up from the environment and `.env`, frozen afterwards.

Every setting is validated here, so a bad value stops start-up with a message
that names it; nothing on the request path parses configuration again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from .budgets.settings import BudgetSettings, read_budget_settings
from .cache.settings import CacheSettings, read_cache_settings
from .chatlog.settings import ChatLogSettings, read_chatlog_settings
from .compat.settings import CompatSettings, read_compat_settings
from .env import (
    EnvReader,
    IPNetwork,
    Setting,
    SettingsError,
    check_url,
    is_loopback,
    parse_networks,
    table,
)
from .fallbacks.settings import FallbackSettings, read_fallback_settings
from .ops.settings import OpsSettings, read_ops_settings
from .origin import Origin
from .providers.settings import ProviderSettings, read_provider_settings
from .ratelimit.settings import LimitSettings, read_limit_settings
from .resilience.settings import ResilienceSettings, read_resilience_settings
from .users.settings import UserSettings, read_user_settings

__all__ = ["EnvReader", "Route", "Settings", "SettingsError", "load_env"]


# The core settings; each feature's are in its own `settings.py`.
OPENAI_BASE_URL = Setting("OPENAI_BASE_URL", "https://api.openai.com", "upstream of the main route")
OPENAI_ROUTE_PREFIX = Setting("OPENAI_ROUTE_PREFIX", "/", "path prefix of the main route")
OPENAI_API_KEY: Setting[tuple[str, ...]] = Setting(
    "OPENAI_API_KEY", (), "real keys of the main route, comma-separated, used round-robin"
)
EXTRA_BASE_URL: Setting[tuple[str, ...]] = Setting(
    "EXTRA_BASE_URL", (), "more upstreams, comma-separated"
)
EXTRA_ROUTE_PREFIX: Setting[tuple[str, ...]] = Setting(
    "EXTRA_ROUTE_PREFIX", (), "their prefixes, paired with EXTRA_BASE_URL by position"
)
EXTRA_API_KEY: Setting[tuple[str, ...]] = Setting(
    "EXTRA_API_KEY", (), "their real keys, paired by position; several for one route: k1|k2"
)
FORWARD_KEY: Setting[tuple[str, ...]] = Setting(
    "FORWARD_KEY", (), "keys clients may use instead of a real key, comma-separated"
)
ALLOW_OPEN_ACCESS = Setting(
    "ALLOW_OPEN_ACCESS", False, "serve real keys to keyless clients on a public address"
)
PROXY: Setting[str | None] = Setting("PROXY", None, "outbound HTTP proxy for upstream calls")
TIMEOUT = Setting(
    "TIMEOUT",
    300.0,
    "seconds to connect to an upstream; also the gap between chunks when above 300",
)
UPSTREAM_POOL_SIZE = Setting(
    "UPSTREAM_POOL_SIZE",
    10000,
    "most upstream connections open at once, streams included (0: no bound)",
)
POOL_TIMEOUT = Setting(
    "POOL_TIMEOUT", 10.0, "seconds a request may wait for a free upstream connection (503 after)"
)
UPSTREAM_CLIENT = Setting(
    "UPSTREAM_CLIENT",
    "builtin",
    "HTTP client for upstream calls: builtin (lean HTTP/1.1) or aiohttp; PROXY uses aiohttp",
)
CORS_ORIGINS = Setting(
    "CORS_ORIGINS", ("*",), "allowed browser origins, comma-separated; preflight answered locally"
)
MAX_BODY_SIZE = Setting(
    "MAX_BODY_SIZE", 100 * 1000**2, "largest request body accepted (413 above it)", shown="100MB"
)
BODY_TIMEOUT = Setting(
    "BODY_TIMEOUT", 60.0, "seconds a client may take to send its whole request body (408 after)"
)
ACCESS_LOG = Setting(
    "ACCESS_LOG", True, "one log line per request (never keys, never query strings)"
)
HOST = Setting("HOST", "0.0.0.0", "address to bind (--host)")
PORT = Setting("PORT", 8000, "port (--port)")
WORKERS = Setting("WORKERS", 1, "worker processes (--workers)")
IP_WHITELIST: Setting[tuple[IPNetwork, ...]] = Setting(
    "IP_WHITELIST", (), "only these client IPs/CIDRs may call (403 for others)"
)
IP_BLACKLIST: Setting[tuple[IPNetwork, ...]] = Setting(
    "IP_BLACKLIST", (), "these client IPs/CIDRs get 403"
)
TRUSTED_PROXIES: Setting[tuple[IPNetwork, ...]] = Setting(
    "TRUSTED_PROXIES",
    (),
    "peers (IPs/CIDRs) whose X-Forwarded-For names the client (and X-Forwarded-Proto the "
    "scheme, for the dashboard's Secure cookie)",
)
DOC = table(
    OPENAI_BASE_URL,
    OPENAI_ROUTE_PREFIX,
    OPENAI_API_KEY,
    EXTRA_BASE_URL,
    EXTRA_ROUTE_PREFIX,
    EXTRA_API_KEY,
    FORWARD_KEY,
    ALLOW_OPEN_ACCESS,
    PROXY,
    TIMEOUT,
    UPSTREAM_POOL_SIZE,
    POOL_TIMEOUT,
    UPSTREAM_CLIENT,
    CORS_ORIGINS,
    MAX_BODY_SIZE,
    BODY_TIMEOUT,
    ACCESS_LOG,
    HOST,
    PORT,
    WORKERS,
)
CLIENT_IP_DOC = table(IP_WHITELIST, IP_BLACKLIST, TRUSTED_PROXIES)


@dataclass(frozen=True)
class Route:
    """One route prefix and the upstream it forwards to."""

    prefix: str
    base_url: str
    keys: tuple[str, ...] = field(default=(), repr=False)
    name: str = "openai"
    origin: Origin = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin(self.base_url))


@dataclass(frozen=True)
class ClientIPSettings:
    """Who the client is (X-Forwarded-For from trusted proxies) and which IPs may call."""

    ip_whitelist: tuple[IPNetwork, ...] = IP_WHITELIST.default
    ip_blacklist: tuple[IPNetwork, ...] = IP_BLACKLIST.default
    trusted_proxies: tuple[IPNetwork, ...] = TRUSTED_PROXIES.default

    @property
    def active(self) -> bool:
        return bool(self.ip_whitelist or self.ip_blacklist or self.trusted_proxies)


def networks(reader: EnvReader, setting: Setting[tuple[IPNetwork, ...]]) -> tuple[IPNetwork, ...]:
    return parse_networks(setting.name, reader.items(setting.name)) or setting.default


def read_client_ip_settings(reader: EnvReader) -> ClientIPSettings:
    return ClientIPSettings(
        ip_whitelist=networks(reader, IP_WHITELIST),
        ip_blacklist=networks(reader, IP_BLACKLIST),
        trusted_proxies=networks(reader, TRUSTED_PROXIES),
    )


@dataclass(frozen=True)
class Settings:
    """Everything ai-forward reads from its environment."""

    routes: tuple[Route, ...] = (Route(OPENAI_ROUTE_PREFIX.default, OPENAI_BASE_URL.default),)
    forward_keys: tuple[str, ...] = field(default=FORWARD_KEY.default, repr=False)
    allow_open_access: bool = ALLOW_OPEN_ACCESS.default
    proxy: str | None = PROXY.default
    timeout: float = TIMEOUT.default
    pool_size: int = UPSTREAM_POOL_SIZE.default
    pool_timeout: float = POOL_TIMEOUT.default
    upstream_client: str = UPSTREAM_CLIENT.default
    cors_origins: tuple[str, ...] = CORS_ORIGINS.default
    max_body_size: int = MAX_BODY_SIZE.default
    body_timeout: float = BODY_TIMEOUT.default
    access_log: bool = ACCESS_LOG.default
    host: str = HOST.default
    port: int = PORT.default
    workers: int = WORKERS.default
    client_ip: ClientIPSettings = field(default_factory=ClientIPSettings)
    # One block per feature, each read and validated by its own module.
    users: UserSettings = field(default_factory=UserSettings)
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
    chatlog: ChatLogSettings = field(default_factory=ChatLogSettings)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    compat: CompatSettings = field(default_factory=CompatSettings)
    fallbacks: FallbackSettings = field(default_factory=FallbackSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings from a mapping (default: ``os.environ``).

        Every bad setting is reported at once: one SettingsError, one line each.
        """
        from .compat.legacy import translate

        errors: list[str] = []
        source = os.environ if env is None else env
        try:
            source = translate(source)
        except SettingsError as exc:
            errors.append(str(exc))
        reader = EnvReader(source)
        parts: dict[str, object] = {}
        for name, read in cls._readers():
            try:
                parts[name] = read(reader)
            except SettingsError as exc:
                errors.append(str(exc))
        if errors:
            raise SettingsError("\n".join(dict.fromkeys(errors)))
        return cls(**parts, extra=dict(reader.env))  # type: ignore[arg-type]

    @staticmethod
    def _readers() -> tuple[tuple[str, Callable[[EnvReader], object]], ...]:
        """Each field and how it is read; each one's error is collected on its own."""
        return (
            ("routes", read_routes),
            ("forward_keys", lambda r: r.items(FORWARD_KEY.name, FORWARD_KEY.default)),
            (
                "allow_open_access",
                lambda r: r.flag(ALLOW_OPEN_ACCESS.name, ALLOW_OPEN_ACCESS.default),
            ),
            ("proxy", lambda r: r.url(PROXY.name, PROXY.default)),
            ("timeout", lambda r: r.number(TIMEOUT.name, TIMEOUT.default, minimum=0.1)),
            (
                "pool_size",
                lambda r: r.integer(UPSTREAM_POOL_SIZE.name, UPSTREAM_POOL_SIZE.default, minimum=0),
            ),
            (
                "pool_timeout",
                lambda r: r.number(POOL_TIMEOUT.name, POOL_TIMEOUT.default, minimum=0.01),
            ),
            ("upstream_client", read_upstream_client),
            ("cors_origins", lambda r: r.items(CORS_ORIGINS.name, CORS_ORIGINS.default)),
            ("max_body_size", lambda r: r.size(MAX_BODY_SIZE.name, MAX_BODY_SIZE.default)),
            (
                "body_timeout",
                lambda r: r.number(BODY_TIMEOUT.name, BODY_TIMEOUT.default, minimum=0.1),
            ),
            ("access_log", lambda r: r.flag(ACCESS_LOG.name, ACCESS_LOG.default)),
            ("host", lambda r: r.text(HOST.name, HOST.default)),
            ("port", lambda r: r.integer(PORT.name, PORT.default, minimum=0, maximum=65535)),
            (
                "workers",
                lambda r: r.integer(WORKERS.name, WORKERS.default, minimum=1, maximum=256),
            ),
            ("client_ip", read_client_ip_settings),
            ("users", read_user_settings),
            ("providers", read_provider_settings),
            ("limits", read_limit_settings),
            ("resilience", read_resilience_settings),
            ("chatlog", read_chatlog_settings),
            ("ops", read_ops_settings),
            ("fallbacks", read_fallback_settings),
            ("compat", read_compat_settings),
            ("cache", read_cache_settings),
            ("budgets", read_budget_settings),
        )

    @property
    def has_real_keys(self) -> bool:
        return any(route.keys for route in self.routes) or self.providers.has_keys

    def open_access_problem(self) -> str | None:
        """Why serving these settings would expose real keys to anyone, or None."""
        if not self.has_real_keys or self.forward_keys or self.allow_open_access:
            return None
        if self.users.admin_token:
            return None  # keyless requests are refused: clients use issued keys
        if is_loopback(self.host):
            return None
        return (
            f"refusing to start: real API keys are configured but FORWARD_KEY is empty, so anyone "
            f"reaching {self.host}:{self.port} would spend them. Set FORWARD_KEY=<a secret of your "
            f"choice> (clients then use it as their API key), bind to 127.0.0.1 with --host, "
            f"or set ALLOW_OPEN_ACCESS=true if open access is really what you want."
        )


def load_env(env_file: str | Path | None = None) -> dict[str, str]:
    """The process environment over the values of an env file (default `./.env`)."""
    path = Path(env_file) if env_file is not None else Path(".env")
    if env_file is not None and not path.is_file():
        raise SettingsError(f"--env-file: no such file: {path}")
    values: dict[str, str] = {}
    if path.is_file():
        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    values.update(os.environ)
    return values


def env_file_names(env_file: str | Path | None = None) -> frozenset[str]:
    """The names an env file sets (default `./.env`; none when it does not exist)."""
    path = Path(env_file) if env_file is not None else Path(".env")
    return frozenset(dotenv_values(path)) if path.is_file() else frozenset()


def normalize_prefix(name: str, prefix: str) -> str:
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    prefix = "/" + prefix.strip("/")
    if "//" in prefix or any(c in prefix for c in "?#% "):
        raise SettingsError(f"{name}={prefix!r}: a route prefix is a plain path such as /localai")
    return prefix


def read_upstream_client(reader: EnvReader) -> str:
    value = reader.text(UPSTREAM_CLIENT.name, UPSTREAM_CLIENT.default).lower()
    if value not in ("builtin", "aiohttp"):
        raise SettingsError(f"{UPSTREAM_CLIENT.name}={value!r}: expected builtin or aiohttp")
    return value


def read_routes(reader: EnvReader) -> tuple[Route, ...]:
    base = reader.url(OPENAI_BASE_URL.name, OPENAI_BASE_URL.default)
    assert base is not None
    routes = [
        Route(
            prefix=normalize_prefix(
                OPENAI_ROUTE_PREFIX.name,
                reader.text(OPENAI_ROUTE_PREFIX.name, OPENAI_ROUTE_PREFIX.default),
            ),
            base_url=base,
            keys=reader.items(OPENAI_API_KEY.name, OPENAI_API_KEY.default),
            name="openai",
        )
    ]
    extra_urls = reader.items(EXTRA_BASE_URL.name, EXTRA_BASE_URL.default)
    extra_prefixes = reader.items(EXTRA_ROUTE_PREFIX.name, EXTRA_ROUTE_PREFIX.default)
    extra_keys = _raw_list(reader.raw(EXTRA_API_KEY.name))
    if len(extra_urls) != len(extra_prefixes):
        raise SettingsError(
            f"EXTRA_BASE_URL has {len(extra_urls)} entries but EXTRA_ROUTE_PREFIX has "
            f"{len(extra_prefixes)}: they are paired by position, give one prefix per URL"
        )
    if extra_keys and len(extra_keys) != len(extra_urls):
        raise SettingsError(
            f"EXTRA_API_KEY has {len(extra_keys)} entries but EXTRA_BASE_URL has "
            f"{len(extra_urls)}: pair them by position, leave an entry empty (a,,c) for none, "
            f"and separate several keys for one route with '|'"
        )
    for i, (url, prefix) in enumerate(zip(extra_urls, extra_prefixes, strict=True)):
        keys = tuple(k for k in extra_keys[i].split("|") if k) if extra_keys else ()
        normalized = normalize_prefix("EXTRA_ROUTE_PREFIX", prefix)
        routes.append(
            Route(
                prefix=normalized,
                base_url=check_url("EXTRA_BASE_URL", url),
                keys=keys,
                name=normalized.strip("/") or "root",
            )
        )
    seen: dict[str, Route] = {}
    for route in routes:
        if route.prefix in seen:
            raise SettingsError(
                f"route prefix {route.prefix!r} is used twice (for {seen[route.prefix].base_url} "
                f"and {route.base_url}): OPENAI_ROUTE_PREFIX and EXTRA_ROUTE_PREFIX must differ"
            )
        seen[route.prefix] = route
    return tuple(routes)


def _raw_list(value: str | None) -> list[str]:
    if value is None:
        return []
    return [item.strip() for item in value.split(",")]
