"""Users and the keys issued to them: the model, key generation and field validation.

A key is ``aifd-`` + 43 URL-safe characters (32 random bytes). Only its SHA-256
is stored, with a short hint (its last four characters) to recognise it in a list.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

KEY_PREFIX = "aifd-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_LIST = 256
_MAX_ITEM = 200
# The last second a store, `datetime` and every client can show: 9999-12-31T23:59:59Z.
LATEST_TIME = 253402300799.0
FIELDS = ("name", "rpm", "tpm", "models", "routes", "expires_at")


class FieldError(ValueError):
    """A user field is missing or malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored: never its key, only the key's hash and hint."""

    name: str
    key_hash: str
    key_hint: str = ""
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    expires_at: float | None = None
    created_at: float = field(default=0.0)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def public(self) -> dict[str, Any]:
        """What the admin API and CLI show: no hash."""
        return {
            "name": self.name,
            "key_hint": self.key_hint,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.models),
            "routes": list(self.routes),
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
        }


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    return f"{KEY_PREFIX}...{key[-4:]}"


def iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        # Written before times were range-checked: show it as stored rather than fail a list.
        return str(stamp)


def check_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate user fields from JSON or the CLI; unknown or malformed fields raise FieldError.

    For a new user (`partial=False`) `name` is required; on a change it is refused.
    """
    for name in data:
        if name not in FIELDS or (partial and name == "name"):
            hint = "the name cannot change" if name == "name" else f"known: {', '.join(FIELDS)}"
            raise FieldError(name, f"unknown field ({hint})")
    out: dict[str, Any] = {}
    if not partial:
        out["name"] = check_name(data.get("name"))
    for limit in ("rpm", "tpm"):
        if limit in data:
            out[limit] = check_limit(limit, data[limit])
    for listed in ("models", "routes"):
        if listed in data:
            out[listed] = check_list(listed, data[listed])
    if "routes" in out:
        out["routes"] = tuple(normal_route(r) for r in out["routes"])
    if "expires_at" in data:
        out["expires_at"] = check_time("expires_at", data["expires_at"])
    return out


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise FieldError(
            "name", "required: 1-64 letters, digits and . _ @ -, starting with a letter or digit"
        )
    return value


def check_limit(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError(
            field, "a whole number of at least 1, or null (CLI: none) for the global limit"
        )
    return value


def check_list(field: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or len(value) > _MAX_LIST:
        raise FieldError(field, f"a list of at most {_MAX_LIST} strings ([] allows all)")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > _MAX_ITEM:
            raise FieldError(field, f"every entry is a non-empty string of at most {_MAX_ITEM}")
        items.append(item.strip())
    return tuple(dict.fromkeys(items))


def normal_route(prefix: str) -> str:
    return "/" + prefix.strip("/")


def check_time(field: str, value: Any) -> float | None:
    """An ISO 8601 date/time (UTC unless it says otherwise), a Unix time, or null; between
    1970 and the end of 9999, so that every store and client can read it back.

    A date alone is the end of that UTC day: the key works all of 2026-12-31 and expires
    at 2027-01-01T00:00:00Z.
    """
    if value is None:
        return None
    stamp: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = float(value)
    elif isinstance(value, str) and _DATE.match(value.strip()):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            end = datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1)
            stamp = min(end.timestamp(), LATEST_TIME)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            stamp = parsed.timestamp()
    if stamp is not None and 0 <= stamp <= LATEST_TIME:  # also false for NaN
        return stamp
    raise FieldError(
        field,
        "an ISO 8601 time such as 2026-12-31T23:59:59Z, a date such as 2026-12-31 (the key "
        "works to the end of that UTC day), or a Unix time, between 1970 and "
        "9999-12-31T23:59:59Z; or null for no expiry",
    )


def utc_day(stamp: float | None = None) -> str:
    """The UTC day of `stamp` (default: now) as YYYY-MM-DD: usage is counted per UTC day."""
    moment = datetime.now(UTC) if stamp is None else datetime.fromtimestamp(stamp, UTC)
    return moment.date().isoformat()
