"""The foreign settings this package reads, and the levels of openai-forward 0.7/0.8."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..env import EnvReader, Setting, SettingsError, table

FORWARD_CONFIG: Setting[str | None] = Setting(
    "FORWARD_CONFIG",
    None,
    'openai-forward\'s routes: [{"base_url": URL, "route": "/", "type": "openai"|"general"}]; '
    "replaces OPENAI_BASE_URL/OPENAI_ROUTE_PREFIX/EXTRA_*",
)
OPENAI_API_KEY_CONFIG: Setting[str | None] = Setting(
    "OPENAI_API_KEY_CONFIG", None, 'real keys and their levels: {"sk-...": [0, 1]}'
)
FORWARD_KEY_CONFIG: Setting[str | None] = Setting(
    "FORWARD_KEY_CONFIG",
    None,
    'forward keys and their level: {"fk-...": 1, "default": 0} (default: keyless clients)',
)
LEVEL_MODELS: Setting[str | None] = Setting(
    "LEVEL_MODELS", None, 'models each level may use: {"1": ["gpt-4"]}; level 0: every model'
)
LOG_OPENAI = Setting("LOG_OPENAI", False, "openai-forward's name: true turns LOG_CHAT on")
LOG_GENERAL = Setting("LOG_GENERAL", False, "openai-forward's name: true turns LOG_CHAT on")
AZURE_OPENAI_APIVERSION: Setting[str | None] = Setting(
    "AZURE_OPENAI_APIVERSION", None, "azure-openai-proxy's name for AZURE_OPENAI_API_VERSION"
)
AZURE_OPENAI_TOKEN: Setting[str | None] = Setting(
    "AZURE_OPENAI_TOKEN",
    None,
    "azure-openai-proxy's one Azure key: sent in place of every client's key",
)
AZURE_OPENAI_PROXY_MODE = Setting(
    "AZURE_OPENAI_PROXY_MODE",
    "reverse",
    "azure-openai-proxy's mode: reverse or forward; both are always served (see README)",
)
DOC = table(
    FORWARD_CONFIG,
    OPENAI_API_KEY_CONFIG,
    FORWARD_KEY_CONFIG,
    LEVEL_MODELS,
    LOG_OPENAI,
    LOG_GENERAL,
    AZURE_OPENAI_APIVERSION,
    AZURE_OPENAI_TOKEN,
    AZURE_OPENAI_PROXY_MODE,
)


@dataclass(frozen=True)
class Levels:
    """openai-forward's levels: which real keys and models a forward key's level gets."""

    forward: Mapping[str, int] = field(default_factory=dict, repr=False)
    keys: Mapping[int, tuple[str, ...]] = field(default_factory=dict, repr=False)
    models: Mapping[int, frozenset[str]] = field(default_factory=dict)
    default: int = 0  # the level of a client without a forward key

    @property
    def active(self) -> bool:
        return bool(self.forward or self.models)

    @property
    def forward_keys(self) -> tuple[str, ...]:
        return tuple(self.forward)

    @property
    def real_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for keys in self.keys.values() for k in keys))


@dataclass(frozen=True)
class CompatSettings:
    """Validated at start-up; read-only afterwards."""

    levels: Levels = field(default_factory=Levels)
    azure_token: bool = False  # AZURE_OPENAI_TOKEN: the Azure key replaces any client key


def read_json(reader: EnvReader, name: str, form: str) -> Any:
    raw = reader.raw(name)
    if raw is None:
        return None
    raw = raw.strip("'\"") if raw[:1] in "'\"" else raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SettingsError(f"{name}: not valid JSON; expected {form}") from None


def is_level(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def real_key_levels(reader: EnvReader) -> dict[str, tuple[int, ...]]:
    """OPENAI_API_KEY_CONFIG, or OPENAI_API_KEY in its 0.7/0.8.0 JSON form."""
    form = '{"sk-...": [0], "sk-...": [1, 2]}'
    name = OPENAI_API_KEY_CONFIG.name
    data = read_json(reader, name, form)
    if data is None and (reader.raw("OPENAI_API_KEY") or "")[:1] == "{":
        name, data = "OPENAI_API_KEY", read_json(reader, "OPENAI_API_KEY", form)
    if data is None:
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for key, levels in data.items() if isinstance(data, dict) else [(None, None)]:
        levels = [levels] if is_level(levels) else levels
        if not isinstance(key, str) or not isinstance(levels, list):
            raise SettingsError(f"{name}: expected {form}")
        if not all(is_level(level) for level in levels):
            raise SettingsError(f"{name}: the levels of a key are whole numbers 0, 1, ...")
        out[key] = tuple(levels) or (0,)
    return out


def forward_key_levels(reader: EnvReader) -> tuple[dict[str, int], int]:
    """FORWARD_KEY_CONFIG, or FORWARD_KEY in its 0.8.0 JSON form; and the "default" level."""
    form = '{"fk-...": 0, "fk-...": 1, "default": 0}'
    name = FORWARD_KEY_CONFIG.name
    data = read_json(reader, name, form)
    if data is None and (reader.raw("FORWARD_KEY") or "")[:1] == "{":
        name, data = "FORWARD_KEY", read_json(reader, "FORWARD_KEY", form)
    if data is None:
        return {}, 0
    if not isinstance(data, dict) or not all(is_level(v) for v in data.values()):
        raise SettingsError(f"{name}: expected {form} (each level a whole number)")
    default = data.pop("default", 0)
    return {str(k): v for k, v in data.items()}, default


def level_models(reader: EnvReader) -> dict[int, frozenset[str]]:
    form = '{"1": ["gpt-4"], "2": ["gpt-3.5-turbo"]}'
    data = read_json(reader, LEVEL_MODELS.name, form)
    if data is None:
        return {}
    out: dict[int, frozenset[str]] = {}
    for level, models in data.items() if isinstance(data, dict) else [("x", None)]:
        if not str(level).isdigit() or not isinstance(models, list):
            raise SettingsError(f"LEVEL_MODELS: expected {form}")
        out[int(level)] = frozenset(str(m) for m in models)
    return out


def read_levels(reader: EnvReader) -> Levels:
    real = real_key_levels(reader)
    forward, default = forward_key_levels(reader)
    models = level_models(reader)
    keys: dict[int, list[str]] = {}
    for key, levels in real.items():
        for level in levels:
            keys.setdefault(level, []).append(key)
    missing = sorted({lv for lv in forward.values() if lv != 0 and lv not in models})
    if missing:
        raise SettingsError(
            f"FORWARD_KEY_CONFIG gives level {', '.join(map(str, missing))} to a forward key but "
            f"LEVEL_MODELS lists no models for it: add it to LEVEL_MODELS "
            f'(e.g. {{"{missing[0]}": ["gpt-4"]}}) or use level 0 (every model)'
        )
    keyless = sorted({lv for lv in forward.values() if real and lv not in keys})
    if keyless:
        raise SettingsError(
            f"FORWARD_KEY_CONFIG gives level {', '.join(map(str, keyless))} to a forward key but "
            f"no real key in OPENAI_API_KEY_CONFIG has that level: give one a level "
            f'(e.g. {{"sk-...": [{keyless[0]}]}})'
        )
    return Levels(forward, {lv: tuple(ks) for lv, ks in keys.items()}, models, default)


def read_compat_settings(reader: EnvReader) -> CompatSettings:
    mode = reader.text(AZURE_OPENAI_PROXY_MODE.name, AZURE_OPENAI_PROXY_MODE.default).lower()
    if mode not in ("reverse", "forward"):
        raise SettingsError(f"AZURE_OPENAI_PROXY_MODE={mode!r}: expected reverse or forward")
    return CompatSettings(
        levels=read_levels(reader), azure_token=reader.raw(AZURE_OPENAI_TOKEN.name) is not None
    )
