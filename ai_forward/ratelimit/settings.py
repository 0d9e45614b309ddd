"""Rate limits: RPM, TPM, stream pace and the counter storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ..env import EnvReader, Setting, SettingsError, table

if TYPE_CHECKING:  # the `limits` package is imported when a limit is parsed, not for `--help`
    from limits import RateLimitItem

STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")
# openai-forward's names that limits no longer has, and what they mean now.
_STRATEGY_ALIASES = {"fixed-window-elastic-expiry": "fixed-window"}
_BACKEND_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+cluster", "redis+sentinel")
_LIMIT_FORM = "a limit such as 60/minute, 1000 per hour or 10/second;500/day"
_RULES_FORM = (
    "rules such as /v1/chat/completions=60/minute;/v1/embeddings=600/minute "
    "(a rule without a path applies to every path), or openai-forward's JSON "
    '{"/v1/chat/completions": "60/minute"}'
)

# Limits are text until parsed: None (unset) is no limit.
GLOBAL_RATE_LIMIT: Setting[str | None] = Setting(
    "GLOBAL_RATE_LIMIT", None, "requests for the whole server, e.g. 1000/minute"
)
REQ_RATE_LIMIT: Setting[str | None] = Setting(
    "REQ_RATE_LIMIT", None, "requests per client per path: /v1/chat/completions=60/minute;..."
)
TPM_LIMIT: Setting[str | None] = Setting(
    "TPM_LIMIT", None, "tokens per client, e.g. 100000/minute, or per path like REQ_RATE_LIMIT"
)
TOKEN_RATE_LIMIT: Setting[str | None] = Setting(
    "TOKEN_RATE_LIMIT",
    None,
    "pace of each streamed reply in tokens: /v1/chat/completions=40/second",
)
RATE_LIMIT_STRATEGY = Setting(
    "RATE_LIMIT_STRATEGY", "moving-window", "fixed-window, moving-window or sliding-window-counter"
)
RATE_LIMIT_BACKEND = Setting(
    "RATE_LIMIT_BACKEND", "memory://", "counter storage: memory:// or redis://host:6379/0 (shared)"
)
REQ_RATE_LIMIT_BACKEND: Setting[str | None] = Setting(
    "REQ_RATE_LIMIT_BACKEND", None, "openai-forward's name for RATE_LIMIT_BACKEND"
)
RATE_LIMIT_FAIL = Setting(
    "RATE_LIMIT_FAIL", "open", "when the storage is unreachable: open (serve) or closed (503)"
)
DOC = table(
    GLOBAL_RATE_LIMIT,
    REQ_RATE_LIMIT,
    TPM_LIMIT,
    TOKEN_RATE_LIMIT,
    RATE_LIMIT_STRATEGY,
    RATE_LIMIT_BACKEND,
    REQ_RATE_LIMIT_BACKEND,
    RATE_LIMIT_FAIL,
)


@dataclass(frozen=True)
class LimitRule:
    """Limits for the paths a pattern matches: `*` every path, `/p/*` a prefix, else exact."""

    pattern: str
    limits: tuple[RateLimitItem, ...]
    level: int | None = None  # openai-forward's level form: only for keys of this level

    def matches(self, path: str, level: int = 0) -> bool:
        if self.level is not None and self.level != level:
            return False
        if self.pattern == "*":
            return True
        if self.pattern.endswith("*"):
            return path.startswith(self.pattern[:-1])
        return path.rstrip("/") == self.pattern.rstrip("/")


@dataclass(frozen=True)
class LimitSettings:
    """Validated at start-up; read-only afterwards."""

    global_limits: tuple[RateLimitItem, ...] = ()
    requests: tuple[LimitRule, ...] = ()
    tokens: tuple[LimitRule, ...] = ()
    pace: tuple[LimitRule, ...] = ()
    strategy: str = RATE_LIMIT_STRATEGY.default
    backend: str = field(default=RATE_LIMIT_BACKEND.default, repr=False)  # may hold a password
    fail_open: bool = RATE_LIMIT_FAIL.default == "open"

    @property
    def counting(self) -> bool:
        """Whether any limit needs the counter storage."""
        return bool(self.global_limits or self.requests or self.tokens)

    @property
    def shared(self) -> bool:
        return not self.backend.startswith("memory")


def read_limit_settings(reader: EnvReader) -> LimitSettings:
    strategy = reader.text(RATE_LIMIT_STRATEGY.name, RATE_LIMIT_STRATEGY.default).lower()
    strategy = _STRATEGY_ALIASES.get(strategy, strategy)
    if strategy not in STRATEGIES:
        raise SettingsError(
            f"RATE_LIMIT_STRATEGY={strategy!r}: expected one of {', '.join(STRATEGIES)}"
        )
    fail = reader.text(RATE_LIMIT_FAIL.name, RATE_LIMIT_FAIL.default).lower()
    if fail not in ("open", "closed"):
        raise SettingsError(f"RATE_LIMIT_FAIL={fail!r}: expected open or closed")
    global_text = reader.raw(GLOBAL_RATE_LIMIT.name)
    return LimitSettings(
        global_limits=(
            parse_limits(GLOBAL_RATE_LIMIT.name, global_text)
            if global_text and global_text.lower() != "inf"
            else ()
        ),
        requests=parse_rules(REQ_RATE_LIMIT.name, reader.raw(REQ_RATE_LIMIT.name)),
        tokens=parse_rules(TPM_LIMIT.name, reader.raw(TPM_LIMIT.name)),
        pace=parse_rules(TOKEN_RATE_LIMIT.name, reader.raw(TOKEN_RATE_LIMIT.name)),
        strategy=strategy,
        backend=read_backend(reader),
        fail_open=fail == "open",
    )


def parse_limits(name: str, text: str) -> tuple[RateLimitItem, ...]:
    from limits import parse_many

    try:
        items = tuple(parse_many(text))
    except ValueError:
        items = ()
    if not items or any(item.amount < 1 for item in items):
        raise SettingsError(f"{name}={text!r}: expected {_LIMIT_FORM}")
    return items


def parse_rules(name: str, value: str | None) -> tuple[LimitRule, ...]:
    """`path=limits;path=limits;limits`, or openai-forward's JSON forms of the same."""
    if value is None:
        return ()
    pairs = _json_pairs(name, value) if value[:1] in "{[" else _text_pairs(value)
    rules = []
    for pattern, text, level in pairs:
        if pattern != "*" and not pattern.startswith("/"):
            raise SettingsError(
                f"{name}={value!r}: {pattern!r} is not a path (start it with /); expected "
                + _RULES_FORM
            )
        try:
            rules.append(LimitRule(pattern, parse_limits(name, text), level))
        except SettingsError:
            raise SettingsError(
                f"{name}={value!r}: {text!r} is not a limit; expected {_RULES_FORM}, "
                f"each limit being {_LIMIT_FORM}"
            ) from None
    return tuple(rules)


Rule = tuple[str, str, int | None]  # path pattern, limits, level (None: every level)


def _text_pairs(value: str) -> list[Rule]:
    pairs: list[Rule] = []
    for entry in value.split(";"):
        if not entry.strip():
            continue
        path, sep, text = entry.partition("=")
        pairs.append((path.strip(), text.strip(), None) if sep else ("*", entry.strip(), None))
    return pairs


def _json_pairs(name: str, value: str) -> list[Rule]:
    """openai-forward's JSON forms: {"path": "limit"}, {"path": [{"level": 0, "limit": ...}]}
    and [{"route": "path", "value": "limit" or [levels]}]."""
    try:
        data: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise SettingsError(f"{name}: not valid JSON; expected {_RULES_FORM}") from None
    if isinstance(data, dict):
        entries = [(k, v) for k, v in data.items()]
    elif isinstance(data, list) and all(
        isinstance(e, dict) and isinstance(e.get("route"), str) for e in data
    ):
        entries = [(e["route"], e.get("value")) for e in data]
    else:
        raise SettingsError(f"{name}={value!r}: expected {_RULES_FORM}")
    pairs: list[Rule] = []
    for route, limit in entries:
        if isinstance(limit, str):
            pairs.append((str(route), limit, None))
            continue
        levels = limit if isinstance(limit, list) else [None]
        for entry in levels:
            level = entry.get("level", 0) if isinstance(entry, dict) else None
            text = entry.get("limit") if isinstance(entry, dict) else None
            if not isinstance(text, str) or not str(level).isdigit():
                raise SettingsError(
                    f"{name}: route {route!r}: expected a limit string or a list such as "
                    f'[{{"level": 0, "limit": "100/2minutes"}}]; {_RULES_FORM}'
                )
            pairs.append((str(route), text, int(str(level))))
    return pairs


def read_backend(reader: EnvReader) -> str:
    ours, theirs = reader.raw(RATE_LIMIT_BACKEND.name), reader.raw(REQ_RATE_LIMIT_BACKEND.name)
    if ours and theirs and ours != theirs:
        raise SettingsError(
            "RATE_LIMIT_BACKEND and REQ_RATE_LIMIT_BACKEND are both set and differ: "
            "set only RATE_LIMIT_BACKEND"
        )
    name = "RATE_LIMIT_BACKEND" if ours else "REQ_RATE_LIMIT_BACKEND"
    value = ours or theirs or RATE_LIMIT_BACKEND.default
    parts = urlsplit(value)
    if parts.scheme not in _BACKEND_SCHEMES or (
        parts.scheme.startswith("redis") and parts.scheme != "redis+unix" and not parts.hostname
    ):
        raise SettingsError(
            f"{name}={value!r}: expected memory:// or a Redis URL such as redis://host:6379/0 "
            f"(schemes: {', '.join(s + '://' for s in _BACKEND_SCHEMES)})"
        )
    # A cluster or a sentinel URL may name several nodes: host:port,host:port.
    hosts = parts.netloc.rpartition("@")[2].split(",") if parts.netloc else []
    for host in hosts:
        port = host.rpartition(":")[2] if ":" in host.lstrip("[").rpartition("]")[2] else ""
        if not host or (port and not port.isdigit()):
            raise SettingsError(f"{name}={value!r}: the port of {host!r} is not a number")
    return value
