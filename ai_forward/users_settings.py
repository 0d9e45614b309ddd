"""Issued user keys, the store, usage and the admin API (issue 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .env import EnvReader, SettingsError

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = (
    ("ADMIN_TOKEN", "", "bearer token of the /admin API (disabled when unset; 16+ characters)"),
    ("STORE_URL", "sqlite:///aifd.db", "where users and usage live: sqlite:///path or redis://"),
    ("KEY_CACHE_TTL", "5", "seconds an issued key's lookup is cached on the request path"),
    ("USAGE_FLUSH_INTERVAL", "2", "seconds between batched usage writes to the store"),
)

DEFAULT_STORE_URL = "sqlite:///aifd.db"
MIN_ADMIN_TOKEN = 16


@dataclass(frozen=True)
class UserSettings:
    """Validated at start-up; read-only afterwards."""

    admin_token: str | None = field(default=None, repr=False)
    store_url: str = field(default=DEFAULT_STORE_URL, repr=False)  # may hold a password
    key_cache_ttl: float = 5.0
    usage_flush_interval: float = 2.0


def read_user_settings(reader: EnvReader) -> UserSettings:
    token = reader.raw("ADMIN_TOKEN")
    if token is not None and len(token) < MIN_ADMIN_TOKEN:
        raise SettingsError(
            f"ADMIN_TOKEN is {len(token)} characters long: use at least {MIN_ADMIN_TOKEN} "
            f"random characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    return UserSettings(
        admin_token=token,
        store_url=read_store_url(reader),
        key_cache_ttl=reader.number("KEY_CACHE_TTL", 5.0, minimum=0.0),
        usage_flush_interval=reader.number("USAGE_FLUSH_INTERVAL", 2.0, minimum=0.05),
    )


def read_store_url(reader: EnvReader) -> str:
    return check_store_url("STORE_URL", reader.text("STORE_URL", DEFAULT_STORE_URL))


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
