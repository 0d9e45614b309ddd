"""Issued user keys checked on every request.

Runs right after the key swap. A key that starts with ``aifd-`` and is not a
forward key is an issued key: unknown or expired → 401, a route or model the
user may not use → 403; otherwise the request goes upstream with the route's
real key, and `ex.principal` carries the user's own limits for the rate limiter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl

from loguru import logger

from ..body import UnreadableBody, form_values
from ..errors import Forbidden, InvalidRequest, ServiceUnavailable, Unauthorized
from ..exchange import MODEL_OVERRIDE, Exchange, Principal, StateKey
from ..keys import Credential, KeyKind, KeyRing
from ..observe import stream_usage
from ..observe.tokens import usage_or_count
from ..pipeline import Contribution, Probe, Shared
from ..settings import Settings
from ..signals import Signals
from ..types import ASGIApp
from .admin import AdminAPI
from .hosts import HostSync
from .key_cache import KeyCache
from .self_service import MOUNT, KeySelfService
from .store import open_store
from .usage import UsageWriter
from .user import KEY_PREFIX, User, hash_key, iso

_ALLOWLIST = "this key's model allowlist"
# Whose usage this exchange counts as, and for which model it asked.
_USER = StateKey[tuple[str, str | None]]("issued user and model")


class UsersHook:
    """Turns an issued key into a principal, or refuses it."""

    def __init__(
        self,
        cache: KeyCache,
        usage: UsageWriter,
        rings: Mapping[str, KeyRing],
        *,
        refuse_keyless: bool = False,
        signals: Signals | None = None,
    ) -> None:
        self.signals = signals or Signals()
        self.cache = cache
        self.usage = usage
        self.rings = rings
        self.refuse_keyless = refuse_keyless

    async def before(self, ex: Exchange) -> None:
        key = ex.key
        if key is None:
            if self.refuse_keyless and ex.key_kind is KeyKind.OPEN:
                raise Unauthorized(
                    "this gateway issues keys: send yours as `Authorization: Bearer aifd-...`"
                )
            return
        if ex.key_kind is not KeyKind.RELAY or not key.value.startswith(KEY_PREFIX):
            return
        try:
            user = await self.cache.user(hash_key(key.value))
        except Exception as exc:
            self.signals.count("storage_error", "users")
            logger.warning("user store unreachable while checking a key: {}", exc)
            raise ServiceUnavailable(
                "the gateway cannot check issued keys right now (its user store is "
                "unreachable); retry shortly"
            ) from None
        if user is None:
            raise Unauthorized(
                "this aifd- key is not valid: it was reset or deleted, or never issued here; "
                "ask the gateway's administrator for a current key"
            )
        check_allowed(user, ex)
        ex.key_kind = KeyKind.USER
        ex.credential = Credential.draw(self.rings.get(ex.route.prefix))
        ex.principal = Principal(user.name, user.rpm, user.tpm, user.models, user.routes)
        ex.set(_USER, (user.name, requested_model(ex)))
        stream_usage.ask_for_usage(ex)

    async def after(self, ex: Exchange) -> None:
        user = ex.get(_USER)
        if user is None or not ex.response_started:
            return
        name, asked = user
        reply = ex.outcome.reply
        # A fallback's usage counts on the model that answered, not the one asked for.
        model = ex.get(MODEL_OVERRIDE) or asked or (reply.get("model") if reply else None) or "-"
        self.usage.count(name, str(model), received(ex))


def received(ex: Exchange) -> dict[str, Any] | None:
    """What the reply cost, counted as the rate limiter counts it, when any of it came."""
    outcome = ex.outcome
    if not outcome.usage and not (outcome.reply or outcome.streamed_chars):
        return None
    return usage_or_count(ex)


def check_allowed(user: User, ex: Exchange) -> None:
    if user.expired(time.time()):
        raise Unauthorized(
            f"this key expired at {iso(user.expires_at)}; ask the gateway's administrator "
            f"to extend it",
            code="key_expired",
        )
    if user.routes and ex.route.prefix not in user.routes:
        raise Forbidden(
            f"this key may not use the route {ex.route.prefix!r}; it may use: "
            + ", ".join(user.routes),
            code="route_not_allowed",
        )
    if user.models:
        query = ex.query.decode("latin-1")
        # A `model` in the query string (as realtime calls send it) counts too.
        check_models(user, [v for k, v in parse_qsl(query) if k == "model"] if query else [])
        check_models(user, body_models(ex))


def check_models(user: User, models: list[str]) -> None:
    for model in models:
        for wanted in (m.strip() for m in model.split(",")):
            if wanted and not any(fnmatchcase(wanted, allowed) for allowed in user.models):
                raise Forbidden(
                    f"this key may not use the model {wanted!r}; it may use: "
                    + ", ".join(user.models),
                    code="model_not_allowed",
                    param="model",
                )


def body_models(ex: Exchange) -> list[str]:
    """Every model the body asks for, read strictly: a body or form that cannot be read
    is refused rather than let through unchecked."""
    if not ex.body:
        return []
    if ex.is_form:
        values = form_values(ex.body, ex.header(b"content-type") or b"", "model")
        if values is None:
            raise UnreadableBody(
                "the multipart form could not be read (its boundary, a part's "
                f"Content-Disposition name, or its closing delimiter); {_ALLOWLIST} needs "
                "its `model` field readable"
            )
        return values
    body = ex.read_json(_ALLOWLIST, strict=True) or {}
    model = body.get("model")
    if model is None:
        return []
    if not isinstance(model, str):
        raise InvalidRequest("`model` must be a string naming one model", param="model")
    # What goes upstream is what was checked: no duplicate key another parser reads first.
    ex.replace_json(body)
    return [model]


def requested_model(ex: Exchange) -> str | None:
    """The `model` of a JSON body, or of a multipart form (audio, image uploads)."""
    if ex.is_form:
        values = form_values(ex.body, ex.header(b"content-type") or b"", "model")
        return values[0] if values else None
    return ex.model


def install(settings: Settings, shared: Shared) -> Contribution:
    """The key check, its store, cache and usage writer, a key holder's own reset;
    `/admin` when ADMIN_TOKEN is set."""
    users = settings.users
    store = open_store(users.store_url)
    cache = KeyCache(store, users.key_cache_ttl)
    usage = UsageWriter(store, users.usage_flush_interval)
    refuse = users.admin_token is not None and not settings.allow_open_access
    hook = UsersHook(cache, usage, shared.rings, refuse_keyless=refuse, signals=shared.signals)
    configured = [host.host for host in settings.providers.hosts]
    hosts = HostSync(store, shared.hosts, shared.redactor, configured)
    mounts: tuple[tuple[str, ASGIApp], ...] = ((MOUNT, KeySelfService(store)),)
    if users.admin_token is not None:
        routes = tuple(route.prefix for route in settings.routes)
        mounts += (("/admin", AdminAPI(users.admin_token, store, usage, routes, hosts)),)
    kind = users.store_url.partition(":")[0]
    return Contribution(
        hooks=(hook,),
        resources=(store, cache, usage, hosts),
        mounts=mounts,
        probes=(Probe(f"user store ({kind})", store.ping),),
    )
