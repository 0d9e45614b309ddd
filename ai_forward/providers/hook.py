"""Picks a provider for each request and translates to and from it.

`ProviderHook.before` decides, from the model (or the X-Host-Final header, or a
`GET /v1/models`), where the request goes and stores the decision on the
exchange; it also checks that the request can be translated, so that an
unsupported feature is refused before any limit is counted. The planner this
feature puts in front of the one below it turns the decision into the upstream
request at each attempt (so the hooks after this one still see, and may change,
the OpenAI-format body) and attaches the translator of the answer; without a
decision, the planner below plans the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from ..body import form_values
from ..errors import InvalidRequest, UnsupportedFeature
from ..exchange import MODEL_OVERRIDE, BeforeOnly, Exchange, StateKey
from ..pipeline import Contribution, Planner, Shared
from ..settings import Settings
from ..upstream import UpstreamRequest
from .fanout import FanOut
from .hosts import HostSelector
from .listing import ModelListing
from .router import Router, Target

# A `"model"` whose value holds a comma (several models): looked for before parsing.
_MODEL_LIST = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*,')
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MAX_MODELS = 8


class Decision(Protocol):
    """Where one request goes; `below` is the planner under this feature's."""

    def plan(self, ex: Exchange, below: Planner) -> UpstreamRequest: ...


DECISION = StateKey[Decision]("provider decision")
# The decision for the model override (a fallback), and the model it was made for.
_OVERRIDDEN = StateKey[tuple[str, Decision | None]]("provider decision for the override")


class SingleModel:
    def __init__(self, router: Router, target: Target) -> None:
        self.router = router
        self.target = target

    def plan(self, ex: Exchange, below: Planner) -> UpstreamRequest:
        body = ex.json() or {}
        if body.get("model") != self.target.model:  # a fallback model
            body = {**body, "model": self.target.model}
        return self.router.plan(ex, self.target, body, track=True)


def may_list_models(ex: Exchange) -> bool:
    """Whether the body may ask for several models (`"model": "a,b"`), without parsing it:
    a body with one `"model"` whose plain value has no comma cannot."""
    body = ex.body
    if body.count(b'"model"') == 1:
        hint = ex.model_hint
        if hint is not None and "," not in hint:
            return False
    return _MODEL_LIST.search(body) is not None


class ProviderHook(BeforeOnly):
    def __init__(self, router: Router, hosts: HostSelector, listing: ModelListing) -> None:
        self.router = router
        self.hosts = hosts
        self.listing = listing

    async def before(self, ex: Exchange) -> None:
        host = ex.header(b"x-host-final")
        if host is not None:
            ex.set(DECISION, self.hosts.decide(ex, host.decode("latin-1").strip()))
            return
        if ex.method == "GET" and ex.upstream_path.rstrip("/") in ("/v1/models", "/models"):
            if self.listing.active:
                ex.set(DECISION, self.listing)
            return
        if ex.method != "POST":
            return
        if not self.router.settings.model_routes and not may_list_models(ex):
            return  # every model goes to the route's own upstream: no need to parse the body
        model = self.model_of(ex)
        if not model:
            return
        if "," in model:
            ex.set(DECISION, self.fan_out(ex, model))
            return
        name = self.router.provider_for(model)
        if name == "openai":
            return
        target = self.router.target(ex, model, name)
        self.router.plan(ex, target, ex.json() or {}, dry=True)  # refuses what it cannot send
        ex.set(DECISION, SingleModel(self.router, target))

    def model_of(self, ex: Exchange) -> str | None:
        """The model to route by. With MODEL_ROUTES set, a body that cannot be read is
        refused (a lenient upstream must not serve a model the routes would send elsewhere),
        and a form's model must be one the route's own upstream serves."""
        if not self.router.settings.model_routes:
            return ex.model
        if ex.is_form:
            for value in form_values(ex.body, ex.header(b"content-type") or b"", "model") or ():
                name = self.router.provider_for(value)
                if name != "openai":
                    raise UnsupportedFeature(
                        f"MODEL_ROUTES sends model {value!r} to {name}, which takes JSON chat "
                        "requests only, not a multipart form",
                        param="model",
                    )
            return None
        body = ex.read_json("routing by model (MODEL_ROUTES)")
        model = body.get("model") if body else None
        return model if isinstance(model, str) else None

    def fan_out(self, ex: Exchange, model: str) -> FanOut:
        names = [m.strip() for m in model.split(",")]
        if not all(names) or len(names) > MAX_MODELS or len(set(names)) != len(names):
            raise InvalidRequest(
                f"model {model!r}: give up to {MAX_MODELS} different model names separated by "
                "commas, none empty",
                param="model",
            )
        if ex.upstream_path not in CHAT_PATHS:
            raise UnsupportedFeature(
                "several models in one request work only for /v1/chat/completions", param="model"
            )
        body = ex.json() or {}
        if body.get("n") not in (None, 1):
            raise UnsupportedFeature("n > 1 with several models; ask for one each", param="n")
        targets = [self.router.target(ex, m, self.router.provider_for(m)) for m in names]
        for target in targets:
            self.router.plan(ex, target, {**body, "model": target.model}, dry=True)
        return FanOut(self.router, targets)


def decide_override(router: Router, ex: Exchange, model: str) -> Decision | None:
    """Where the override model goes (None: the planner below); raises if it cannot go."""
    made = ex.get(_OVERRIDDEN)
    if made is not None and made[0] == model:
        return made[1]
    name = router.provider_for(model)
    decision: Decision | None = None
    if name != "openai":
        target = router.target(ex, model, name)
        router.plan(ex, target, {**(ex.json() or {}), "model": model}, dry=True)
        decision = SingleModel(router, target)
    ex.set(_OVERRIDDEN, (model, decision))
    return decision


def provider_planner(router: Router) -> Callable[[Planner], Planner]:
    def wrap(below: Planner) -> Planner:
        def plan(ex: Exchange) -> UpstreamRequest:
            model = ex.get(MODEL_OVERRIDE)
            decision = ex.get(DECISION) if model is None else decide_override(router, ex, model)
            return decision.plan(ex, below) if decision is not None else below(ex)

        return plan

    return wrap


def install(settings: Settings, shared: Shared) -> Contribution:
    """The provider hook, and the translating planner in front of the one below it."""
    router = Router(settings, shared.rings)
    main = settings.routes[0]
    # A main route left at its default, with no keys, is no source when providers are set.
    unset = not main.keys and "OPENAI_BASE_URL" not in settings.extra
    providers = settings.providers
    only_providers = bool(providers.azure or providers.anthropic_keys or providers.gemini_keys)
    skip = frozenset({main.prefix}) if unset and only_providers else frozenset()
    listing = ModelListing(router, skip)
    hook = ProviderHook(router, HostSelector(settings.providers.hosts, shared.hosts), listing)
    return Contribution(hooks=(hook,), wrap_planner=provider_planner(router))
