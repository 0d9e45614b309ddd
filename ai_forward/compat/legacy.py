"""openai-forward 0.7/0.8 and azure-openai-proxy settings, rewritten into ours.

`translate` runs once, before the settings are read: it returns the environment
with the foreign forms turned into the names the readers know (FORWARD_CONFIG into
OPENAI_BASE_URL/EXTRA_*, the JSON key forms into key lists, LOG_OPENAI into
LOG_CHAT, ...). A foreign setting never overrides one of ours that is also set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..env import EnvReader, SettingsError
from .settings import (
    AZURE_OPENAI_APIVERSION,
    AZURE_OPENAI_TOKEN,
    FORWARD_CONFIG,
    LOG_GENERAL,
    LOG_OPENAI,
    read_json,
    read_levels,
)

OLD_ROUTE_NAMES = ("OPENAI_BASE_URL", "OPENAI_ROUTE_PREFIX", "EXTRA_BASE_URL", "EXTRA_ROUTE_PREFIX")
_FORM = '[{"base_url": "https://api.openai.com", "route": "/", "type": "openai"}, ...]'


def translate(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with openai-forward 0.7/0.8's and azure-openai-proxy's forms in our names."""
    reader = EnvReader(env)
    out = dict(env)
    levels = read_levels(reader)
    if levels.forward or levels.keys:
        # The plain lists hold every key, so that each is known (and masked); the level
        # hook then picks, per forward key, among its level's keys only.
        out["FORWARD_KEY"] = ",".join(levels.forward_keys)
        out["OPENAI_API_KEY"] = ",".join(levels.real_keys)
    out.update(forward_config(reader, ",".join(levels.real_keys) or out.get("OPENAI_API_KEY")))
    if not reader.raw("LOG_CHAT") and (
        reader.flag(LOG_OPENAI.name, False) or reader.flag(LOG_GENERAL.name, False)
    ):
        out["LOG_CHAT"] = "true"
    version = reader.raw(AZURE_OPENAI_APIVERSION.name)
    if version and not reader.raw("AZURE_OPENAI_API_VERSION"):
        out["AZURE_OPENAI_API_VERSION"] = version
    azure_only = reader.raw("AZURE_OPENAI_ENDPOINT") and not any(
        reader.raw(n)
        for n in ("MODEL_ROUTES", "OPENAI_BASE_URL", "OPENAI_API_KEY", "FORWARD_CONFIG")
    )
    if azure_only:
        out["MODEL_ROUTES"] = "*=azure"  # as azure-openai-proxy: every model goes to Azure
    token = reader.raw(AZURE_OPENAI_TOKEN.name)
    if token:
        if reader.raw("AZURE_OPENAI_API_KEY"):
            raise SettingsError(
                "AZURE_OPENAI_TOKEN and AZURE_OPENAI_API_KEY are both set: keep one "
                "(AZURE_OPENAI_TOKEN is azure-openai-proxy's name for one resource's key)"
            )
        count = len(reader.items("AZURE_OPENAI_ENDPOINT"))
        out["AZURE_OPENAI_API_KEY"] = ",".join([token] * max(count, 1))
    return out


def forward_config(reader: EnvReader, keys: str | None) -> dict[str, str]:
    """FORWARD_CONFIG as OPENAI_BASE_URL, OPENAI_ROUTE_PREFIX and EXTRA_* (empty if unset)."""
    data: Any = read_json(reader, FORWARD_CONFIG.name, _FORM)
    if data is None:
        return {}
    both = [name for name in OLD_ROUTE_NAMES if reader.raw(name)]
    if both:
        raise SettingsError(
            f"FORWARD_CONFIG and {', '.join(both)} are both set: they say the same thing in "
            f"two styles; keep FORWARD_CONFIG (openai-forward 0.7+) or the older names, not both"
        )
    if not isinstance(data, list) or not data:
        raise SettingsError(f"FORWARD_CONFIG: expected a non-empty list such as {_FORM}")
    routes: list[tuple[str, str, str]] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            raise SettingsError(f"FORWARD_CONFIG: {entry!r} has no base_url; expected {_FORM}")
        kind = entry.get("type", "general")
        if kind not in ("openai", "general"):
            raise SettingsError(
                f"FORWARD_CONFIG: type {kind!r} of {entry['base_url']}: expected openai or general"
            )
        routes.append((entry["base_url"], str(entry.get("route") or "/"), kind))
    # The first openai route is the main one; the others follow as EXTRA routes.
    main = next((r for r in routes if r[2] == "openai"), routes[0])
    extras = [r for r in routes if r is not main]
    out = {"OPENAI_BASE_URL": main[0], "OPENAI_ROUTE_PREFIX": main[1]}
    if main[2] == "general":
        out["OPENAI_API_KEY"] = ""  # openai-forward swaps keys on openai routes only
    if extras:
        out["EXTRA_BASE_URL"] = ",".join(r[0] for r in extras)
        out["EXTRA_ROUTE_PREFIX"] = ",".join(r[1] for r in extras)
        if keys:
            out["EXTRA_API_KEY"] = ",".join(
                keys.replace(",", "|") if r[2] == "openai" else "" for r in extras
            )
    return out
