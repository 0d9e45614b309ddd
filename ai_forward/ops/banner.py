"""The start-up banner: one block saying what this instance will do.

Counts of keys, never keys; storage URLs without their passwords.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from limits import RateLimitItem

from ..ratelimit.settings import LimitRule
from ..ratelimit.store import redact
from ..settings import Settings


def describe(settings: Settings, version: str, checks: Mapping[str, str]) -> str:
    """The banner's lines, the first naming the version."""
    rows = [(name, text) for name, text in sections(settings, checks) if text]
    width = max(len(name) for name, _ in rows) + 1
    lines = [f"ai-forward {version} is serving on {settings.host}:{settings.port}"]
    for name, text in rows:
        first, *rest = text.split("\n")
        lines.append(f"  {name + ':':<{width}} {first}")
        lines += [f"  {'':<{width}} {more}" for more in rest]
    return "\n".join(lines)


def sections(settings: Settings, checks: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    yield (
        "routes",
        "\n".join(
            f"{r.prefix} -> {r.base_url} ({keys(len(r.keys), 'client keys relayed')})"
            for r in settings.routes
        ),
    )
    pool = f"at most {settings.pool_size} connections" if settings.pool_size else "unbounded"
    if settings.proxy is not None:
        yield "upstream", f"aiohttp through PROXY {redact(settings.proxy)} ({pool})"
    else:
        yield "upstream", f"{settings.upstream_client} HTTP client ({pool})"
    yield "forward keys", keys(len(settings.forward_keys), "none")
    yield "open access", "on" if settings.allow_open_access else "off"
    yield "providers", providers(settings)
    yield "limits", limits(settings)
    users = settings.users
    yield "user store", redact(users.store_url)
    yield "admin API", "/admin" if users.admin_token else "off (ADMIN_TOKEN unset)"
    chatlog = settings.chatlog
    yield "chat log", str(chatlog.chat_dir) if chatlog.enabled else "off"
    yield "cache", cache(settings)
    ops = settings.ops
    who = (
        "bearer METRICS_TOKEN"
        if ops.metrics_token
        else "anyone"
        if ops.metrics_public
        else "loopback clients only"
    )
    yield "metrics", f"/metrics ({who})" if ops.metrics else "off"
    yield (
        "logs",
        f"{ops.log_level}, {'json' if ops.log_json else 'text'}"
        + (", access log on" if settings.access_log else ", access log off"),
    )
    yield "CORS", ", ".join(settings.cors_origins) or "off"
    yield "readiness", "\n".join(f"{name}: {result}" for name, result in checks.items())


def keys(count: int, none: str) -> str:
    if not count:
        return none
    return f"{count} key" + ("s" if count > 1 else "")


def providers(settings: Settings) -> str:
    p = settings.providers
    lines = []
    if p.anthropic_keys:
        models = ", ".join(p.anthropic_models)
        lines.append(f"anthropic {models} ({keys(len(p.anthropic_keys), '')})")
    if p.gemini_keys:
        lines.append(f"gemini {', '.join(p.gemini_models)} ({keys(len(p.gemini_keys), '')})")
    for resource in p.azure:
        deployments = ", ".join(resource.deployments) or "any deployment"
        lines.append(f"azure {resource.endpoint} {deployments}")
    lines += [f"{pattern} -> {provider}" for pattern, provider in p.model_routes]
    lines += [f"host {host.host} ({keys(len(host.keys), 'no keys')})" for host in p.hosts]
    return "\n".join(lines) or "openai-compatible only (by route)"


def limits(settings: Settings) -> str:
    limits = settings.limits
    lines = [f"global {', '.join(map(rate, limits.global_limits))}"] if limits.global_limits else []
    lines += [f"requests {rule_text(rule)}" for rule in limits.requests]
    lines += [f"tokens {rule_text(rule)}" for rule in limits.tokens]
    lines += [f"pace {rule_text(rule)}" for rule in limits.pace]
    if not lines:
        return "none"
    lines.append(f"counted in {redact(limits.backend)} ({limits.strategy})")
    return "\n".join(lines)


def rule_text(rule: LimitRule) -> str:
    return f"{rule.pattern} {', '.join(map(rate, rule.limits))}"


def rate(item: RateLimitItem) -> str:
    return f"{item.amount}/{item.get_expiry()}s"


def cache(settings: Settings) -> str:
    c = settings.cache
    scope = "shared by all clients" if c.shared else "per client"
    when = f"by default on {', '.join(sorted(c.routes))}" if c.default else "when a request asks"
    return f"{redact(c.backend)}, {when}, {scope}, ttl {c.ttl:g}s"
