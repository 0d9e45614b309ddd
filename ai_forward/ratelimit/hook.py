"""RPM and TPM limits, counted in one storage operation per request (see `counters.py`).

Per request, in order: the client's request limits (its issued-user limit when it has
one, else REQ_RATE_LIMIT per key or IP), then GLOBAL_RATE_LIMIT, then a reservation of
the tokens the request may use (TPM_LIMIT). When the reply ends, the reservation is
settled against the usage the upstream reported (or a local count when it reported
none). Counters are keyed by a hash of the client's key, never the key itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import NamedTuple

from ..errors import RateLimited
from ..exchange import KEY_LEVEL, Exchange, StateKey
from ..observe.stream_usage import ask_for_usage
from ..observe.tokens import estimate_request, usage_or_count, usage_tokens
from ..pipeline import Contribution, Probe, Shared
from ..settings import Settings
from ..types import Headers
from .counters import FIXED, STRATEGY_CODES, Charge, Settlement
from .pacing import paced
from .settings import LimitRule, LimitSettings
from .store import STORAGE_ERRORS, LimitStore

_SETTLE_MARGIN = 0.2
_MATCHES_KEPT = 1024  # (path, key level) pairs whose matching rules are remembered
_PLANS_KEPT = 16384  # clients' plans remembered (path, level and key or IP each)
_HEADER_NAMES = {
    unit: tuple(
        f"x-ratelimit-{figure}-{unit}".encode() for figure in ("limit", "remaining", "reset")
    )
    for unit in ("requests", "tokens")
}
RuleLimits = tuple[tuple[LimitRule, "Limit"], ...]


class Limit(NamedTuple):
    """One limit as it applies to this request: how much per how long, whose counter, and
    how to name it."""

    amount: int
    window: int  # seconds
    key: str
    name: str

    def describe(self, unit: str) -> str:
        return f"{self.amount} {unit} per {duration(self.window)} ({self.name})"

    def charge(self, kind: str, cost: int = 1) -> Charge:
        return Charge(self.key, kind, self.amount, self.window, cost)


def rule_limits(kind: str, setting: str, rules: Sequence[LimitRule]) -> RuleLimits:
    """Each rule's limits with their counter keys but the client's id, built once."""
    return tuple(
        (
            rule,
            Limit(
                item.amount,
                item.get_expiry(),
                f"{kind}/{rule.pattern}/{item.amount}/{item.get_expiry()}/",
                f"{setting}{on(rule.pattern)}, per client",
            ),
        )
        for rule in rules
        for item in rule.limits
    )


class ClientPlan(NamedTuple):
    """The limits that apply to one client on one path, with their counters' keys and the
    charges of a request, built once for the client and kept."""

    requests: tuple[Limit, ...]
    tokens: tuple[Limit, ...]
    request_charges: tuple[Charge, ...]
    # The first request limit as the headers show it (bytes, ready to send).
    shown: bytes


class Reservation(NamedTuple):
    """The tokens reserved on one counter, settled when the reply ends."""

    key: str
    window: int
    tokens: int
    window_end: float


_RESERVED = StateKey[tuple[Reservation, ...]]("token reservations")


class LimitHook:
    """Counts requests and tokens; answers 429 with OpenAI's rate limit headers.

    All the limits of a request are counted in one storage operation before the upstream
    call, and its token reservations settled in one after it.
    """

    def __init__(self, settings: LimitSettings, store: LimitStore) -> None:
        self.settings = settings
        self.store = store
        self.kind = STRATEGY_CODES[settings.strategy]
        self.request_rules = rule_limits("req", "REQ_RATE_LIMIT", settings.requests)
        self.token_rules = rule_limits("tpm", "TPM_LIMIT", settings.tokens)
        self._matches: dict[tuple[str, int], tuple[tuple[Limit, ...], tuple[Limit, ...]]] = {}
        # (path, key level, the client's key or IP) -> its plan; bounded, emptied when full.
        self._plans: dict[tuple[str, int, str], ClientPlan | None] = {}
        self.global_limits = [
            Limit(
                item.amount,
                item.get_expiry(),
                f"req/global/{item.amount}/{item.get_expiry()}",
                "GLOBAL_RATE_LIMIT",
            )
            for item in settings.global_limits
        ]

    async def before(self, ex: Exchange) -> None:
        settings = self.settings
        if settings.pace:
            rates = [
                item.amount / item.get_expiry()
                for rule in settings.pace
                if rule.matches(ex.path, ex.get(KEY_LEVEL) or 0)
                for item in rule.limits
            ]
            if rates and is_streamed(ex):
                ex.body_filters.append(paced(min(rates)))
        if not settings.counting and ex.principal is None:
            return
        plan = self.plan_for(ex)
        if plan is None:
            return
        store = self.store
        if not store.available:
            store.failed(None)
            return
        requests, tokens, charges, _ = plan
        estimate = 0
        if tokens:
            ask_for_usage(ex)
            # A form (an upload) is estimated by its size; any other body must be readable.
            rule = "TPM_LIMIT" if ex.principal is None else "this key's tokens-per-minute limit"
            body = None if ex.is_form else ex.read_json(rule)
            estimate = estimate_request(body, ex.upstream_path, len(ex.body))
            # A request alone never exceeds a token limit forever: it costs at most the limit.
            charges += tuple(
                Charge(t.key, FIXED, t.amount, t.window, min(estimate, t.amount)) for t in tokens
            )
        memory = store.memory
        if memory is not None:  # plain code, no await: nothing to wait for
            verdict = memory.take_now(charges, time.time())
        else:
            try:  # a call to Redis is bounded by STORAGE_TIMEOUT (see store.py)
                verdict = await store.counters.take(charges)
            except STORAGE_ERRORS as exc:
                store.failed(exc)
                return
        counts = verdict.counts
        if verdict.refused is not None:
            i = verdict.refused
            reset_in = counts[i].reset_in
            if i < len(requests):
                limit = requests[i]
                message = f"rate limit reached: {limit.describe('requests')}"
                raise rejected(message, limit.amount, reset_in, "requests")
            limit = tokens[i - len(requests)]
            message = (
                f"token rate limit reached: {limit.describe('tokens')}; this request "
                f"may use up to {estimate} tokens (prompt plus max_tokens)"
            )
            raise rejected(message, limit.amount, reset_in, "tokens")
        if requests:
            # The headers tell the client about its own limit (the first), as OpenAI's do.
            count = counts[0]
            names = _HEADER_NAMES["requests"]
            ex.response_headers += (
                (names[0], plan.shown),
                (names[1], b"%d" % max(requests[0].amount - count.used, 0)),
                (names[2], duration(max(count.reset_in, 0.0)).encode()),
            )
        if tokens:
            now = time.time()
            token_charges = charges[len(requests) :]
            token_counts = counts[len(requests) :]
            ex.set(
                _RESERVED,
                tuple(
                    Reservation(c.key, c.window, c.cost, now + n.reset_in)
                    for c, n in zip(token_charges, token_counts, strict=True)
                ),
            )
            charge, count = token_charges[0], token_counts[0]
            if len(token_charges) > 1:
                charge, count = min(
                    zip(token_charges, token_counts, strict=True),
                    key=lambda pair: pair[0].amount - pair[1].used,
                )
            ex.response_headers += ratelimit_headers(
                "tokens", charge.amount, charge.amount - count.used, count.reset_in
            )

    def plan_for(self, ex: Exchange) -> ClientPlan | None:
        """The limits that apply to this request (None: none does)."""
        if ex.principal is None:
            key = ex.key
            cached = (ex.path, ex.get(KEY_LEVEL) or 0, key.value if key else ex.client_ip)
            if cached in self._plans:
                return self._plans[cached]
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[cached] = self.new_plan(ex)
            return plan
        return self.new_plan(ex)

    def new_plan(self, ex: Exchange) -> ClientPlan | None:
        requests, tokens = self.limits_for(ex)
        if not (requests or tokens):
            return None
        charges = tuple(limit.charge(self.kind) for limit in requests)
        shown = b"%d" % requests[0].amount if requests else b""
        return ClientPlan(tuple(requests), tuple(tokens), charges, shown)

    def limits_for(self, ex: Exchange) -> tuple[list[Limit], list[Limit]]:
        principal = ex.principal
        if principal is not None:
            requests = client_limits(ex, "req", principal.rpm, self.request_rules)
            tokens = client_limits(ex, "tpm", principal.tpm, self.token_rules)
            return requests + self.global_limits, tokens
        level = ex.get(KEY_LEVEL) or 0
        matched = self._matches.get((ex.path, level))
        if matched is None:
            if len(self._matches) >= _MATCHES_KEPT:
                self._matches.clear()
            matched = self._matches[(ex.path, level)] = (
                matching(self.request_rules, ex.path, level),
                matching(self.token_rules, ex.path, level),
            )
        request_rules, token_rules = matched
        if not (request_rules or token_rules):
            return list(self.global_limits), []
        client = ex.client_id
        requests = [Limit(r.amount, r.window, r.key + client, r.name) for r in request_rules]
        tokens = [Limit(t.amount, t.window, t.key + client, t.name) for t in token_rules]
        return requests + self.global_limits, tokens

    async def after(self, ex: Exchange) -> None:
        reserved = ex.get(_RESERVED)
        if not reserved or not self.store.available:
            return
        used = tokens_used(ex)
        now = time.time()
        settlements = tuple(
            Settlement(r.key, r.window, used - r.tokens)
            for r in reserved
            # A refund only within the window it was reserved in; an extra charge always.
            if used > r.tokens or (used < r.tokens and now < r.window_end - _SETTLE_MARGIN)
        )
        if not settlements:
            return
        memory = self.store.memory
        if memory is not None:
            memory.settle_now(settlements, now)
            return
        try:
            await self.store.counters.settle(settlements)
        except STORAGE_ERRORS as exc:
            self.store.failed(exc, raise_closed=False)


def matching(rules: RuleLimits, path: str, level: int) -> tuple[Limit, ...]:
    """The limits of the rules that apply to `path` for a key of `level`."""
    return tuple(limit for rule, limit in rules if rule.matches(path, level))


def client_limits(ex: Exchange, kind: str, per_user: int | None, rules: RuleLimits) -> list[Limit]:
    """The client's own limits of one kind: its issued user's per-minute figure, when it
    has one, else the matching rules of the setting, counted per client key or IP."""
    if ex.principal is not None and per_user is not None:
        unit = "requests" if kind == "req" else "tokens"
        user = ex.principal.name
        name = f"the {unit} per minute of user {user}"
        return [Limit(per_user, 60, f"{kind}/user/{per_user}/60/{user}", name)]
    if not rules:
        return []
    client = ex.client_id
    path = ex.path
    level = ex.get(KEY_LEVEL) or 0
    return [
        Limit(limit.amount, limit.window, limit.key + client, limit.name)
        for rule, limit in rules
        if rule.matches(path, level)
    ]


def tokens_used(ex: Exchange) -> int:
    """The tokens the exchange really used: reported usage, else a local count."""
    return usage_tokens(usage_or_count(ex)) or 0


def on(pattern: str) -> str:
    return "" if pattern == "*" else f" for {pattern}"


def is_streamed(ex: Exchange) -> bool:
    if ex.method != "POST" or ex.is_form:
        return False
    body = ex.read_json("TOKEN_RATE_LIMIT (pacing streamed replies)")
    return body is not None and body.get("stream") is True


def rejected(message: str, limit: int, reset_in: float, unit: str) -> RateLimited:
    wait = max(reset_in, 0.001)
    headers = {
        name.decode(): value.decode() for name, value in ratelimit_headers(unit, limit, 0, reset_in)
    }
    headers["retry-after"] = str(max(1, math.ceil(wait)))
    headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return RateLimited(f"{message}; retry after {duration(wait)}", headers=headers)


def ratelimit_headers(unit: str, limit: int, remaining: int, reset_in: float) -> Headers:
    limit_name, remaining_name, reset_name = _HEADER_NAMES[unit]
    return [
        (limit_name, b"%d" % limit),
        (remaining_name, b"%d" % max(remaining, 0)),
        (reset_name, duration(max(reset_in, 0.0)).encode()),
    ]


def duration(seconds: float) -> str:
    """OpenAI's style of duration: 20ms, 1.5s, 6m0s, 1h2m3s."""
    if seconds < 1:
        return f"{max(round(seconds * 1000), 0)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"


def install(settings: Settings, shared: Shared) -> Contribution:
    """The limit hook and its counter storage.

    The limit hook is there even with no server-wide limit set: an issued user's own
    `rpm`/`tpm` hold on their own. Requests of other clients then leave it at once.
    """
    limits = settings.limits
    store = LimitStore(limits, settings.workers, shared.signals)
    probes = (Probe("rate limit storage", store.ping),) if limits.shared else ()
    return Contribution(hooks=(LimitHook(limits, store),), resources=(store,), probes=probes)
