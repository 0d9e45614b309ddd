"""Issued user keys, the store, usage and the admin API."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..env import EnvReader, Setting, SettingsError, table

ADMIN_TOKEN: Setting[str | None] = Setting(
    "ADMIN_TOKEN", None, "bearer token of the /admin API (disabled when unset; 16+ characters)"
)
STORE_URL = Setting(
    "STORE_URL", "sqlite:///aifd.db", "where users and usage live: sqlite:///path or redis://"
)
KEY_CACHE_TTL = Setting(
    "KEY_CACHE_TTL", 5.0, "seconds an issued key's lookup is cached on the request path"
)
USAGE_FLUSH_INTERVAL = Setting(
    "USAGE_FLUSH_INTERVAL", 2.0, "seconds between batched usage writes to the store"
)
DOC = table(ADMIN_TOKEN, STORE_URL, KEY_CACHE_TTL, USAGE_FLUSH_INTERVAL)
DEFAULT_STORE_URL = STORE_URL.default
MIN_ADMIN_TOKEN = 16


@dataclass(frozen=True)
class UserSettings:
    """Validated at start-up; read-only afterwards."""

    admin_token: str | None = field(default=ADMIN_TOKEN.default, repr=False)
    store_url: str = field(default=STORE_URL.default, repr=False)  # may hold a password
    key_cache_ttl: float = KEY_CACHE_TTL.default
    usage_flush_interval: float = USAGE_FLUSH_INTERVAL.default


def read_user_settings(reader: EnvReader) -> UserSettings:
    token = reader.raw(ADMIN_TOKEN.name)
    if token is not None and len(token) < MIN_ADMIN_TOKEN:
        raise SettingsError(
            f"ADMIN_TOKEN is {len(token)} characters long: use at least {MIN_ADMIN_TOKEN} "
            f"random characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    return UserSettings(
        admin_token=token,
        store_url=read_store_url(reader),
        key_cache_ttl=reader.number(KEY_CACHE_TTL.name, KEY_CACHE_TTL.default, minimum=0.0),
        usage_flush_interval=reader.number(
            USAGE_FLUSH_INTERVAL.name, USAGE_FLUSH_INTERVAL.default, minimum=0.05
        ),
    )


def read_store_url(reader: EnvReader) -> str:
    return check_store_url(STORE_URL.name, reader.text(STORE_URL.name, STORE_URL.default))


def check_store_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.strip("/"):
            raise SettingsError(
                f"{name}={value!r}: a SQLite store is sqlite:///relative/path.db or "
                f"sqlite:////absolute/path.db"
            )
        return value
    if parts.scheme in ("redis", "rediss", "unix"):
        if parts.scheme != "unix" and not parts.hostname:
            raise SettingsError(
                f"{name}={value!r}: a Redis store needs a host (redis://host:6379/0)"
            )
        return value
    raise SettingsError(
        f"{name}={value!r}: expected sqlite:///path.db (embedded) or redis://host:port/db (shared)"
    )


def sqlite_path(url: str) -> str:
    """The file of a sqlite:/// URL: three slashes relative, four absolute."""
    return urlsplit(url).path[1:]
