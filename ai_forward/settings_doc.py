"""The table of settings shown by `aifd run --help` (README and .env.example say the same).

Each row comes from a `Setting` in the settings module of the core or of a feature.
"""

from __future__ import annotations

import re

from . import settings as core
from .cache import settings as cache_settings
from .chatlog import settings as chatlog_settings
from .compat import settings as compat_settings
from .fallbacks import settings as fallback_settings
from .ops import settings as ops_settings
from .providers import settings as provider_settings
from .ratelimit import settings as ratelimit_settings
from .resilience import settings as retry_settings
from .users import settings as users_settings

SETTINGS = (
    core.DOC
    + users_settings.DOC
    + provider_settings.DOC
    + fallback_settings.DOC
    + ratelimit_settings.DOC
    + core.CLIENT_IP_DOC
    + retry_settings.DOC
    + chatlog_settings.DOC
    + ops_settings.DOC
    + cache_settings.DOC
    + compat_settings.DOC
)

# Names read that the table does not list: openai-forward's spellings of our settings, the
# log library's own switches.
ALIASES = ("REQ_RATE_LIMIT_BACKEND", "LOGURU_DIAGNOSE", "LOGURU_BACKTRACE", "LOGURU_LEVEL")
KNOWN = frozenset(name for name, _, _ in SETTINGS) | frozenset(ALIASES)


# Characters Markdown would read as formatting (`*` as emphasis, `_`, brackets, ...).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+!|~-])")


def literal(text: str) -> str:
    """`text` escaped so the help's Markdown shows it as written (`claude-*` keeps its `*`)."""
    return _MARKDOWN.sub(r"\\\1", text)


def settings_help() -> str:
    lines = ["**Settings** (environment or .env; flags win):", ""]
    lines += [
        f"* `{name}` {literal(f'[{default}]' if default else '[unset]')}: {literal(text)}"
        for name, default, text in SETTINGS
    ]
    return "\n".join(lines)
