"""The table of settings shown by `aifd run --help` (README and .env.example say the same)."""

from __future__ import annotations

from .cache import settings as cache_settings
from .chatlog import settings as chatlog_settings
from .providers import settings as provider_settings
from .ratelimit import settings as ratelimit_settings
from .resilience import settings as retry_settings
from .users import settings as users_settings

CORE: tuple[tuple[str, str, str], ...] = (
    ("OPENAI_BASE_URL", "https://api.openai.com", "upstream of the main route"),
    ("OPENAI_ROUTE_PREFIX", "/", "path prefix of the main route"),
    ("OPENAI_API_KEY", "", "real keys of the main route, comma-separated, used round-robin"),
    ("EXTRA_BASE_URL", "", "more upstreams, comma-separated"),
    ("EXTRA_ROUTE_PREFIX", "", "their prefixes, paired with EXTRA_BASE_URL by position"),
    ("EXTRA_API_KEY", "", "their real keys, paired by position; several for one route: k1|k2"),
    ("FORWARD_KEY", "", "keys clients may use instead of a real key, comma-separated"),
    ("ALLOW_OPEN_ACCESS", "false", "serve real keys to keyless clients on a public address"),
    ("PROXY", "", "outbound HTTP proxy for upstream calls"),
    ("TIMEOUT", "300", "seconds: connect timeout and longest gap between upstream bytes"),
    ("CORS_ORIGINS", "*", "allowed browser origins, comma-separated; preflight answered locally"),
    ("MAX_BODY_SIZE", "100MB", "largest request body accepted (413 above it)"),
    ("ACCESS_LOG", "true", "one log line per request (never keys, never query strings)"),
    ("HOST", "0.0.0.0", "address to bind (--host)"),
    ("PORT", "8000", "port (--port)"),
    ("WORKERS", "1", "worker processes (--workers)"),
)
CLIENT_IP: tuple[tuple[str, str, str], ...] = (
    ("IP_WHITELIST", "", "only these client IPs/CIDRs may call (403 for others)"),
    ("IP_BLACKLIST", "", "these client IPs/CIDRs get 403"),
    ("TRUSTED_PROXIES", "", "peers (IPs/CIDRs) whose X-Forwarded-For names the client"),
)

SETTINGS = (
    CORE
    + users_settings.DOC
    + provider_settings.DOC
    + ratelimit_settings.DOC
    + CLIENT_IP
    + retry_settings.DOC
    + chatlog_settings.DOC
    + cache_settings.DOC
)


def settings_help() -> str:
    lines = ["**Settings** (environment or .env; flags win):", ""]
    lines += [f"* `{name}` [{default or 'unset'}]: {text}" for name, default, text in SETTINGS]
    return "\n".join(lines)
