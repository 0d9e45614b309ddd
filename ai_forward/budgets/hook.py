"""Per-user budgets, checked before a request goes upstream and settled when it ends.

A user with a budget has the request's worst case (prompt estimate plus what it may
generate, at its model's MODEL_PRICES) charged to the ledger first; a charge that would
pass the budget is refused with 429 `budget_exceeded`. When the reply ends, the charge
is corrected to the real cost (the usage the upstream reported, else a local count).
Users without a budget, and callers that are not issued users, pass untouched.

With FALLBACKS, the worst case is that of the dearest model the request may end on,
and the real cost is priced at the model that answered. Several models in one request
(`"model": "a,b"`) reserve the sum of each one's worst case and, since the upstreams'
usage comes back added up, settle it at the dearest of them. A cache hit settles at 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from loguru import logger

from ..errors import RateLimited, ServiceUnavailable
from ..exchange import MODEL_OVERRIDE, Exchange, StateKey
from ..observe.stream_usage import ask_for_usage
from ..observe.tokens import estimate_request, prompt_tokens, usage_or_count
from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from .budget import Budget
from .ledger import Ledger, open_ledger
from .prices import Price, Prices, dearest, dollars, usage_counts

# The ledger entry charged for this exchange, what was charged, and the model priced.
_CHARGED = StateKey[tuple[str, int, str | None]]("budget charge")


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class BudgetHook:
    def __init__(
        self, prices: Prices, ledger: Ledger, chains: Mapping[str, tuple[str, ...]] | None = None
    ) -> None:
        self.prices = prices
        self.ledger = ledger
        self.chains = chains or {}

    async def before(self, ex: Exchange) -> None:
        principal = ex.principal
        if principal is None or principal.budget is None:
            return
        amount, period = principal.budget
        budget = Budget(amount, period)
        name, reset = budget.window()
        key = f"{principal.name}:{name}"
        model = ex.model
        worst = self.worst_case(ex, model)
        try:
            charged, spent = await self.ledger.reserve(key, worst, budget.nanos, reset.timestamp())
        except Exception as exc:
            logger.warning("budgets: the ledger is unreachable: {}", exc)
            raise ServiceUnavailable(
                "the gateway cannot check this key's budget right now (its store is "
                "unreachable); retry shortly",
                headers={"retry-after": "1"},
            ) from None
        if not charged:
            raise exceeded(principal.name, budget, spent, worst, reset)
        ex.set(_CHARGED, (key, worst, model))
        ask_for_usage(ex)

    def worst_case(self, ex: Exchange, model: str | None) -> int:
        """Nano-dollars the request may cost: its prompt plus all it may generate, at
        the dearest model that may answer, for each model it asks."""
        prices = [self.price(ex, part) for part in (model or "").split(",") if part]
        if not any(prices):
            return 0
        body = None if ex.is_form else ex.read_json("this key's budget")
        total = estimate_request(body, ex.upstream_path, len(ex.body))
        prompt = min(prompt_tokens(body), total) if body is not None else total
        return sum(price.cost(prompt, total - prompt) for price in prices if price)

    def price(self, ex: Exchange, model: str) -> Price | None:
        """The dearest of `model` and the fallbacks this exchange's user may be given."""
        chain = self.chains.get(model, ())
        allowed = ex.principal.models if ex.principal is not None else ()
        if allowed:
            chain = tuple(m for m in chain if any(fnmatchcase(m, a) for a in allowed))
        return dearest([self.prices.find(m) for m in (model, *chain)])

    def served_price(self, ex: Exchange, asked: str | None) -> Price | None:
        """The price of the model that answered (a fallback's, when one did)."""
        reply = ex.outcome.reply
        model = ex.get(MODEL_OVERRIDE) or asked
        model = model or (str(reply.get("model")) if reply and reply.get("model") else None)
        # Several models: the dearest of them, as the usage records price them.
        return self.prices.find(model)

    async def after(self, ex: Exchange) -> None:
        charged = ex.get(_CHARGED)
        if charged is None:
            return
        key, reserved, model = charged
        real = 0
        price = self.served_price(ex, model) if ex.response_started else None
        if price is not None:
            real = price.cost(*usage_counts(usage_or_count(ex)))
        try:
            await self.ledger.settle(key, real - reserved)
        except Exception as exc:
            logger.warning("budgets: settling a charge failed: {}", exc)


def exceeded(user: str, budget: Budget, spent: int, worst: int, reset: datetime) -> RateLimited:
    wait = max(reset.timestamp() - time.time(), 1.0)
    stamp = reset.astimezone(UTC).isoformat().replace("+00:00", "Z")
    message = (
        f"budget exceeded: user {user} has spent ${dollars(spent):.4f} of its "
        f"${budget.amount:g} per {budget.period} budget"
    )
    if worst and spent < budget.nanos:
        message += (
            f", and this request may cost up to ${dollars(worst):.4f} (its prompt plus "
            f"max_tokens; a lower max_tokens may fit)"
        )
    message += f"; it resets at {stamp}. Ask the gateway's administrator to raise it"
    return BudgetExceeded(
        message,
        headers={
            "retry-after": str(math.ceil(wait)),
            "x-budget-limit-usd": f"{budget.amount:g}",
            "x-budget-spent-usd": f"{dollars(spent):.6f}",
            "x-budget-reset": stamp,
        },
    )


def install(settings: Settings, shared: Shared) -> Contribution:
    """The budget check, its ledger on the users' store (STORE_URL); nothing without
    MODEL_PRICES, since every cost is then zero."""
    if not settings.budgets.prices:
        return NOTHING
    ledger = open_ledger(settings.users.store_url)
    hook = BudgetHook(settings.budgets.prices, ledger, settings.fallbacks.chains)
    return Contribution(hooks=(hook,), resources=(ledger,))
