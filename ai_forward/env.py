"""Typed reads of environment variables; every error names the variable it is about."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)


class SettingsError(ValueError):
    """A setting is missing, malformed or inconsistent; the message names it."""


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One setting, written once: its name, its default (of the setting's type) and its help.

    The settings dataclasses take their defaults from here, the readers their names and
    defaults, and `aifd run --help` its table (README and .env.example name each one).
    """

    name: str
    default: T
    help: str
    shown: str | None = None  # the default as the help shows it, when not plainly `default`

    @property
    def doc(self) -> tuple[str, str, str]:
        """(NAME, default as shown, help), a row of the help's table."""
        return self.name, self.shown if self.shown is not None else _shown(self.default), self.help


def _shown(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def table(*settings: Setting[Any]) -> tuple[tuple[str, str, str], ...]:
    """The help rows of `settings`, in order."""
    return tuple(setting.doc for setting in settings)


class EnvReader:
    """Typed reads from an environment mapping; errors name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def items(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={value!r}: expected true or false")

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r}: expected a number of seconds") from None
        if number < minimum:
            raise SettingsError(f"{name}={value!r}: must be at least {minimum}")
        return number

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r}: expected a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise SettingsError(f"{name}={value!r}: must be at least {minimum}{upper}")
        return number

    def size(self, name: str, default: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        match = _SIZE.match(value)
        if not match:
            raise SettingsError(
                f"{name}={value!r}: expected a size such as 104857600, 100MB or 1GiB"
            )
        number, unit = float(match.group(1)), (match.group(2) or "").lower()
        binary = "i" in unit
        base = 1024 if binary else 1000
        power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3}[unit[:1] if unit[:1] in "kmg" else ""]
        return int(number * base**power)

    def url(self, name: str, default: str | None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        return check_url(name, value)


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only."""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def check_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={value!r}: expected an http:// or https:// URL with a host")
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"{name}={value!r}: the port is not a number") from None
    if parts.query or parts.fragment:
        raise SettingsError(f"{name}={value!r}: a base URL takes no query string or fragment")
    return value.rstrip("/")


def parse_networks(name: str, items: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"{name}: {item!r} is not an IP address or CIDR such as 10.0.0.0/8 or ::1"
            ) from None
    return tuple(networks)
