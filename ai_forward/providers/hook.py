"""Picks a provider for each request and translates to and from it (issue 6).

`ProviderHook.before` decides, from the model (or the X-Host-Final header, or a
`GET /v1/models`), where the request goes and stores the decision on the
exchange; it also checks that the request can be translated, so that an
unsupported feature is refused before any limit is counted. The planner that
`install_providers` puts in place turns the decision into the upstream
request at each attempt (so the hooks after this one still see, and may
change, the OpenAI-format body) and attaches the translator of the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..body import form_values
from ..errors import InvalidRequest, UnsupportedFeature
from ..exchange import Exchange
from ..forward import Planner
from ..upstream import UpstreamRequest
from .fanout import FanOut
from .hosts import HostSelector
from .listing import ModelListing
from .router import Router, Target

if TYPE_CHECKING:
    from ..app import Gateway

DECISION = "providers.decision"
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MAX_MODELS = 8


class Decision(Protocol):
    def plan(self, ex: Exchange) -> UpstreamRequest: ...


class SingleModel:
    def __init__(self, router: Router, target: Target) -> None:
        self.router = router
        self.target = target

    def plan(self, ex: Exchange) -> UpstreamRequest:
        return self.router.plan(ex, self.target, ex.json() or {}, track=True)


class ProviderHook:
    def __init__(self, router: Router, hosts: HostSelector, listing: ModelListing) -> None:
        self.router = router
        self.hosts = hosts
        self.listing = listing

    async def before(self, ex: Exchange) -> None:
        host = ex.header(b"x-host-final")
        if host is not None:
            ex.state[DECISION] = self.hosts.decide(ex, host.decode("latin-1").strip())
            return
        if ex.method == "GET" and ex.upstream_path.rstrip("/") in ("/v1/models", "/models"):
            if self.listing.active:
                ex.state[DECISION] = self.listing
            return
        model = self.model_of(ex) if ex.method == "POST" else None
        if not model:
            return
        if "," in model:
            ex.state[DECISION] = self.fan_out(ex, model)
            return
        name = self.router.provider_for(model)
        if name == "openai":
            return
        target = self.router.target(ex, model, name)
        self.router.plan(ex, target, ex.json() or {}, dry=True)  # refuses what it cannot send
        ex.state[DECISION] = SingleModel(self.router, target)

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

    async def after(self, ex: Exchange) -> None:
        return None


def provider_planner(fallback: Planner) -> Planner:
    def plan(ex: Exchange) -> UpstreamRequest:
        decision: Decision | None = ex.state.get(DECISION)
        return decision.plan(ex) if decision is not None else fallback(ex)

    return plan


def install_providers(gateway: Gateway) -> None:
    """Add the provider hook and put the translating planner in front of the current one."""
    settings = gateway.settings
    router = Router(settings, gateway.rings)
    hosts = HostSelector(settings.providers.hosts)
    listing = ModelListing(router, gateway.planner)
    gateway.hooks.append(ProviderHook(router, hosts, listing))
    gateway.planner = provider_planner(gateway.planner)
