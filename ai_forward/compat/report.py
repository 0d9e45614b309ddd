"""What start-up says about settings it will not use as written: unknown names (with "did
you mean X?"), names of openai-forward and the seeds that have a replacement here, and
settings that mean something else here than in openai-forward."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

from ..settings import Settings
from ..upstream import idle_default

PREFIXES = (
    "OPENAI_",
    "EXTRA_",
    "FORWARD_",
    "AZURE_",
    "ANTHROPIC_",
    "GEMINI_",
    "CACHE_",
    "LOG_",
    "REQ_",
    "TOKEN_",
    "RATE_LIMIT",
    "GLOBAL_",
    "IP_",
    "HOST_",
    "STORE_",
    "ADMIN_",
    "WEBUI_",
    "TPM_",
    "MODEL_",
    "LEVEL_",
    "CORS_",
)
# Names the seeds use that have no setting of their own here, and what to do instead.
REPLACED = {
    "WEBUI_RESTART_PORT": "there is no web UI; settings live in .env (see `aifd run --help`)",
    "WEBUI_LOG_PORT": "there is no web UI; the log goes to stderr",
    "OPENAI_FORWARD_WEBUI": "there is no web UI; settings live in .env",
    "BENCHMARK_MODE": "there is no benchmark mode; point a route at a fake upstream instead",
    "ITER_CHUNK_TYPE": "chunks are always relayed as they arrive (one-by-one)",
    "DEFAULT_STREAM_RESPONSE": "the client's own `stream` value is sent as it is",
    "TZ": "times in logs and chat logs are UTC (ISO 8601 with offset); TZ is not read",
    "PRINT_CHAT": "chats are not printed; LOG_CHAT=true records them under LOG_DIR/chat",
    "SSL_CERTFILE": "terminate TLS in front of the gateway (nginx, caddy; see deploy.md)",
    "SSL_KEYFILE": "terminate TLS in front of the gateway (nginx, caddy; see deploy.md)",
    "SSL_KEYFILE_PASSWORD": "terminate TLS in front of the gateway (see deploy.md)",
    "SSL_CA_CERTS": "terminate TLS in front of the gateway (see deploy.md)",
    "CHAT_COMPLETION_ROUTE": "paths are fixed by the upstream API; nothing to set",
    "COMPLETION_ROUTE": "paths are fixed by the upstream API; nothing to set",
    "EMBEDDING_ROUTE": "paths are fixed by the upstream API; nothing to set",
    "CUSTOM_GENERAL_ROUTE": "paths are fixed by the upstream API; nothing to set",
    "LOG_CACHE_DB_INFO": "there is no cache database log",
    "CACHE_OPENAI": "the cache serves every route: list its paths in CACHE_ROUTES",
    "CACHE_GENERAL": "the cache serves every route: list its paths in CACHE_ROUTES",
    "CACHE_ROOT_PATH_OR_URL": "set the file or server in CACHE_BACKEND (sqlite:///..., redis://)",
    "OPENAI_API_BASE": "use OPENAI_BASE_URL",
    "ROUTE_PREFIX": "use OPENAI_ROUTE_PREFIX",
    "ACCESS_TOKEN": "ai-proxy-cloudflare's admin token: use ADMIN_TOKEN (16+ characters)",
    "AZURE_OPENAI_API_VER": "use AZURE_OPENAI_API_VERSION",
}


# Set by the system for every program: named only when the .env file sets them.
_SYSTEM = frozenset({"TZ"})


def unknown_settings(
    env: Mapping[str, str], file_names: Collection[str], known: Iterable[str]
) -> list[str]:
    """One warning per setting not used: every name of the .env file, and each name of
    the environment with one of our prefixes."""
    known_set = set(known)
    candidates = [
        n
        for n in env
        if n in file_names or n.startswith(PREFIXES) or (n in REPLACED and n not in _SYSTEM)
    ]
    warnings = []
    for name in sorted(dict.fromkeys(candidates)):
        if name in known_set:
            continue
        where = "in .env" if name in file_names else "in the environment"
        if name in REPLACED:
            warnings.append(f"{name} ({where}) is not used here: {REPLACED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(known_set), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} ({where}) is not a setting of ai-forward, ignored{hint}")
    return warnings


def meaning_notes(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """Settings whose meaning differs from openai-forward's, said once at start-up."""
    notes = []
    global_limit = env.get("GLOBAL_RATE_LIMIT", "").strip()
    if global_limit and global_limit.lower() != "inf":
        notes.append(
            f"GLOBAL_RATE_LIMIT={global_limit} counts every request to this server together "
            f"(all clients, all paths). In openai-forward it limited each client on paths "
            f"without a REQ_RATE_LIMIT rule; for that, write REQ_RATE_LIMIT={global_limit} "
            f"(a rule without a path applies per client to every path) and drop "
            f"GLOBAL_RATE_LIMIT"
        )
    if env.get("TIMEOUT", "").strip() and not env.get("IDLE_TIMEOUT", "").strip():
        idle = settings.resilience.idle_timeout or idle_default(settings.timeout)
        notes.append(
            f"TIMEOUT={settings.timeout:g} bounds connecting to an upstream only; a stream "
            f"may pause up to {idle:g}s "
            f"between chunks (IDLE_TIMEOUT) and the answer may take up to "
            f"{settings.resilience.first_byte_timeout:g}s to start (FIRST_BYTE_TIMEOUT)"
        )
    if env.get("AZURE_OPENAI_PROXY_MODE", "").strip().lower() == "forward":
        notes.append(
            "AZURE_OPENAI_PROXY_MODE=forward: both modes are always served; clients may "
            "use the gateway as their HTTP proxy (HTTP_PROXY=http://this-host:port)"
        )
    return notes
