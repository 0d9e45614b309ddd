"""Providers and translation between formats: where each is, its keys, which models go there."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..env import EnvReader, Setting, SettingsError, check_url, table
from ..origin import Origin

BUILTIN = ("openai", "azure", "anthropic", "gemini")
DEFAULT_ROUTES = (("claude-*", "anthropic"), ("gemini-*", "gemini"))
DEFAULT_ANTHROPIC_MODELS = "claude-opus-4-1,claude-sonnet-4-5,claude-3-5-haiku-latest"
DEFAULT_GEMINI_MODELS = "gemini-2.5-pro,gemini-2.5-flash,gemini-2.0-flash"

Keys = tuple[str, ...]
# Azure deployment names cannot hold dots: azure-openai-proxy's built-in pairs, which
# AZURE_OPENAI_MODEL_MAPPER's own pairs override.
AZURE_BUILTIN_MAPPER = (
    ("gpt-3.5-turbo", "gpt-35-turbo"),
    ("gpt-3.5-turbo-0301", "gpt-35-turbo-0301"),
)
MODEL_ROUTES: Setting[str | None] = Setting(
    "MODEL_ROUTES",
    None,
    "model pattern=provider pairs (';'-separated) picking where chat completions go; "
    "a provider is openai (the route's own upstream), azure, anthropic, gemini or an "
    "EXTRA route name; unmatched models go to the route's own upstream; the defaults "
    "apply when ANTHROPIC_API_KEY / GEMINI_API_KEY are set",
    shown=";".join(f"{pattern}={provider}" for pattern, provider in DEFAULT_ROUTES),
)
ANTHROPIC_API_KEY: Setting[Keys] = Setting(
    "ANTHROPIC_API_KEY", (), "Anthropic keys, comma-separated, used round-robin"
)
ANTHROPIC_BASE_URL = Setting(
    "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "Anthropic API base URL (/v1 optional)"
)
ANTHROPIC_VERSION = Setting("ANTHROPIC_VERSION", "2023-06-01", "the anthropic-version header sent")
ANTHROPIC_MAX_TOKENS = Setting(
    "ANTHROPIC_MAX_TOKENS", 4096, "max_tokens sent when the client gives none"
)
ANTHROPIC_MODELS = Setting(
    "ANTHROPIC_MODELS",
    tuple(DEFAULT_ANTHROPIC_MODELS.split(",")),
    "Claude models listed by GET /v1/models",
)
GEMINI_API_KEY: Setting[Keys] = Setting(
    "GEMINI_API_KEY", (), "Gemini keys, comma-separated, used round-robin (x-goog-api-key)"
)
GEMINI_BASE_URL = Setting(
    "GEMINI_BASE_URL",
    "https://generativelanguage.googleapis.com/v1beta",
    "Gemini API base URL with its version (none given: /v1beta)",
)
GEMINI_MODELS = Setting(
    "GEMINI_MODELS",
    tuple(DEFAULT_GEMINI_MODELS.split(",")),
    "Gemini models listed by GET /v1/models",
)
AZURE_OPENAI_ENDPOINT: Setting[Keys] = Setting(
    "AZURE_OPENAI_ENDPOINT", (), "Azure OpenAI resource endpoints, comma-separated"
)
AZURE_OPENAI_API_KEY: Setting[str | None] = Setting(
    "AZURE_OPENAI_API_KEY", None, "their keys, paired by position; several for one: k1|k2"
)
AZURE_OPENAI_DEPLOYMENTS: Setting[str | None] = Setting(
    "AZURE_OPENAI_DEPLOYMENTS",
    None,
    "deployments of each resource, paired by position (d1|d2); empty: any deployment",
)
AZURE_OPENAI_API_VERSION = Setting(
    "AZURE_OPENAI_API_VERSION", "2024-10-21", "the api-version query parameter sent"
)
AZURE_OPENAI_MODEL_MAPPER: Setting[str | None] = Setting(
    "AZURE_OPENAI_MODEL_MAPPER",
    None,
    "model=deployment pairs, comma-separated, besides the built-in gpt-3.5-turbo=gpt-35-turbo "
    "and gpt-3.5-turbo-0301=gpt-35-turbo-0301; other models use their name as deployment",
)
HOST_ALLOWLIST: Setting[Keys] = Setting(
    "HOST_ALLOWLIST", (), "hosts the X-Host-Final header may select, comma-separated"
)
HOST_KEYS: Setting[str | None] = Setting(
    "HOST_KEYS", None, "host=key pairs, comma-separated (several keys: host=k1|k2)"
)
DOC = table(
    MODEL_ROUTES,
    ANTHROPIC_API_KEY,
    ANTHROPIC_BASE_URL,
    ANTHROPIC_VERSION,
    ANTHROPIC_MAX_TOKENS,
    ANTHROPIC_MODELS,
    GEMINI_API_KEY,
    GEMINI_BASE_URL,
    GEMINI_MODELS,
    AZURE_OPENAI_ENDPOINT,
    AZURE_OPENAI_API_KEY,
    AZURE_OPENAI_DEPLOYMENTS,
    AZURE_OPENAI_API_VERSION,
    AZURE_OPENAI_MODEL_MAPPER,
    HOST_ALLOWLIST,
    HOST_KEYS,
)


@dataclass(frozen=True)
class AzureResource:
    """One Azure OpenAI resource: where it is, its keys, the deployments it has."""

    endpoint: str
    keys: tuple[str, ...] = field(default=(), repr=False)
    deployments: tuple[str, ...] = ()
    origin: Origin = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin(self.endpoint))

    def serves(self, deployment: str) -> bool:
        return not self.deployments or deployment in self.deployments


@dataclass(frozen=True)
class AllowedHost:
    """A host X-Host-Final may name, the scheme and port to reach it, and its keys."""

    host: str
    base_url: str
    keys: tuple[str, ...] = field(default=(), repr=False)
    origin: Origin = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin(self.base_url))


@dataclass(frozen=True)
class ProviderSettings:
    """Validated at start-up; read-only afterwards."""

    model_routes: tuple[tuple[str, str], ...] = ()
    anthropic_keys: tuple[str, ...] = field(default=(), repr=False)
    anthropic_base_url: str = ANTHROPIC_BASE_URL.default
    anthropic_version: str = ANTHROPIC_VERSION.default
    anthropic_max_tokens: int = ANTHROPIC_MAX_TOKENS.default
    anthropic_models: tuple[str, ...] = ANTHROPIC_MODELS.default
    gemini_keys: tuple[str, ...] = field(default=(), repr=False)
    gemini_base_url: str = GEMINI_BASE_URL.default
    gemini_models: tuple[str, ...] = GEMINI_MODELS.default
    azure: tuple[AzureResource, ...] = ()
    azure_api_version: str = AZURE_OPENAI_API_VERSION.default
    azure_model_mapper: tuple[tuple[str, str], ...] = ()
    hosts: tuple[AllowedHost, ...] = ()

    @property
    def has_keys(self) -> bool:
        return bool(
            self.anthropic_keys
            or self.gemini_keys
            or any(r.keys for r in self.azure)
            or any(h.keys for h in self.hosts)
        )

    def deployment(self, model: str) -> str:
        return dict(self.azure_model_mapper).get(model, model)


def read_provider_settings(reader: EnvReader) -> ProviderSettings:
    keyed = {
        "anthropic": reader.items(ANTHROPIC_API_KEY.name),
        "gemini": reader.items(GEMINI_API_KEY.name),
    }
    # The default rules apply only to providers with keys, so that a route to an aggregator
    # (OpenRouter, a LiteLLM proxy) keeps receiving claude-* models unless told otherwise.
    defaults = tuple(rule for rule in DEFAULT_ROUTES if keyed[rule[1]])
    return ProviderSettings(
        model_routes=read_model_routes(reader) + defaults,
        anthropic_keys=keyed["anthropic"],
        anthropic_base_url=_url(
            reader, ANTHROPIC_BASE_URL.name, ANTHROPIC_BASE_URL.default
        ).removesuffix("/v1"),
        anthropic_version=reader.text(ANTHROPIC_VERSION.name, ANTHROPIC_VERSION.default),
        anthropic_max_tokens=reader.integer(
            ANTHROPIC_MAX_TOKENS.name, ANTHROPIC_MAX_TOKENS.default, minimum=1
        ),
        anthropic_models=reader.items(ANTHROPIC_MODELS.name, ANTHROPIC_MODELS.default),
        gemini_keys=keyed["gemini"],
        gemini_base_url=_versioned(_url(reader, GEMINI_BASE_URL.name, GEMINI_BASE_URL.default)),
        gemini_models=reader.items(GEMINI_MODELS.name, GEMINI_MODELS.default),
        azure=read_azure(reader),
        azure_api_version=reader.text(
            AZURE_OPENAI_API_VERSION.name, AZURE_OPENAI_API_VERSION.default
        ),
        azure_model_mapper=AZURE_BUILTIN_MAPPER
        + _pairs(reader, AZURE_OPENAI_MODEL_MAPPER.name, ","),
        hosts=read_hosts(reader),
    )


def read_model_routes(reader: EnvReader) -> tuple[tuple[str, str], ...]:
    names = set(BUILTIN) | {
        p.strip().strip("/") for p in reader.items("EXTRA_ROUTE_PREFIX") if p.strip("/ ")
    }
    rules = _pairs(reader, MODEL_ROUTES.name, ";")
    for pattern, provider in rules:
        if provider not in names:
            raise SettingsError(
                f"MODEL_ROUTES: {pattern}={provider}: unknown provider {provider!r}; use one of "
                + ", ".join(sorted(names))
                + " (an EXTRA_ROUTE_PREFIX name is an OpenAI-compatible upstream)"
            )
    return rules


def read_azure(reader: EnvReader) -> tuple[AzureResource, ...]:
    endpoints = reader.items(AZURE_OPENAI_ENDPOINT.name)
    keys = _positional(reader, AZURE_OPENAI_API_KEY.name, len(endpoints))
    deployments = _positional(reader, AZURE_OPENAI_DEPLOYMENTS.name, len(endpoints))
    return tuple(
        AzureResource(
            endpoint=check_url("AZURE_OPENAI_ENDPOINT", endpoint),
            keys=_split(keys[i]),
            deployments=_split(deployments[i]),
        )
        for i, endpoint in enumerate(endpoints)
    )


def read_hosts(reader: EnvReader) -> tuple[AllowedHost, ...]:
    keys: dict[str, tuple[str, ...]] = {}
    for host, value in _pairs(reader, HOST_KEYS.name, ","):
        keys[host.lower()] = _split(value)
    hosts: list[AllowedHost] = []
    for entry in reader.items(HOST_ALLOWLIST.name):
        host, base_url = host_origin(entry)
        hosts.append(AllowedHost(host, base_url, keys.pop(host, ())))
    if keys:
        raise SettingsError(
            f"HOST_KEYS names {', '.join(sorted(keys))} which HOST_ALLOWLIST does not list; "
            "add them to HOST_ALLOWLIST or remove their keys"
        )
    return tuple(hosts)


def host_origin(entry: str, name: str = "HOST_ALLOWLIST") -> tuple[str, str]:
    """(host, base URL) for `api.groq.com` or `https://api.groq.com[:port]`; SettingsError
    naming `name` for anything else."""
    base = entry.strip() if "://" in entry else "https://" + entry.strip()
    parts = urlsplit(check_url(name, base))
    if parts.path.strip("/"):
        raise SettingsError(f"{name}={entry!r}: give a host (api.groq.com), no path")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"{name}={entry!r}: give a host, no user or password in it")
    host = parts.netloc.lower()
    return host, f"{parts.scheme}://{host}"


def _url(reader: EnvReader, name: str, default: str) -> str:
    return reader.url(name, default) or default


def _versioned(url: str) -> str:
    """A Gemini base URL given without its API version gets `/v1beta`."""
    return url + "/v1beta" if urlsplit(url).path in ("", "/") else url


def _pairs(reader: EnvReader, name: str, sep: str) -> tuple[tuple[str, str], ...]:
    raw = reader.raw(name)
    if raw is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in raw.replace(";", sep).split(sep):
        if not item.strip():
            continue
        left, eq, right = item.partition("=")
        if not eq or not left.strip() or not right.strip():
            raise SettingsError(f"{name}: {item.strip()!r} is not a name=value pair")
        pairs.append((left.strip(), right.strip()))
    return tuple(pairs)


def _positional(reader: EnvReader, name: str, count: int) -> list[str]:
    raw = reader.raw(name)
    values = [] if raw is None else [v.strip() for v in raw.split(",")]
    if values and len(values) != count:
        raise SettingsError(
            f"{name} has {len(values)} entries but AZURE_OPENAI_ENDPOINT has {count}: pair them "
            "by position, leave an entry empty (a,,c) for none and separate several with '|'"
        )
    return values or [""] * count


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split("|") if v.strip())
