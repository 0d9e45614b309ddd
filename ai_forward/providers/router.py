"""Which provider serves a model, where it is, and with which key."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..errors import InvalidRequest, UnsupportedFeature
from ..exchange import Exchange
from ..keys import Credential, KeyKind, KeyRing
from ..origin import Origin
from ..settings import Route, Settings
from ..upstream import UpstreamRequest
from .base import JSON, Endpoint, Provider, ProviderRequest
from .openai import OpenAICompatible
from .registry import registry
from .reply import translator
from .settings import AzureResource, ProviderSettings
from .validate import check_chat


class AzurePool:
    """Azure resources taken in turn among those that have the deployment."""

    def __init__(self, resources: tuple[AzureResource, ...]) -> None:
        self.resources = resources
        self.rings = [KeyRing(r.keys) for r in resources]
        self._turn: Iterator[int] = itertools.count()

    def pick(self, deployment: str, turn: bool = True) -> tuple[AzureResource, KeyRing]:
        """The next resource that has `deployment` (the first one if not `turn`)."""
        able = [i for i, r in enumerate(self.resources) if r.serves(deployment)]
        if not able:
            raise InvalidRequest(
                f"no Azure resource has a deployment named {deployment!r}; add it to "
                "AZURE_OPENAI_DEPLOYMENTS or map the model with AZURE_OPENAI_MODEL_MAPPER",
                code="model_not_found",
                param="model",
            )
        i = able[next(self._turn) % len(able) if turn else 0]
        return self.resources[i], self.rings[i]


@dataclass(frozen=True)
class Target:
    """One model at one provider: enough to plan a request to it, attempt after attempt."""

    provider: Provider
    label: str
    model: str
    origin: Origin | None  # None: the Azure pool picks one per attempt
    ring: KeyRing | None
    deployment: str = ""
    azure: AzurePool | None = None
    passthrough: bool = False


class Router:
    def __init__(self, settings: Settings, rings: Mapping[str, KeyRing]) -> None:
        p: ProviderSettings = settings.providers
        self.settings = p
        self.providers = registry(p.anthropic_version)
        self.open = not settings.forward_keys
        # azure-openai-proxy's AZURE_OPENAI_TOKEN: without forward keys (open access, which
        # start-up allows only on loopback or with ALLOW_OPEN_ACCESS), the Azure key goes
        # upstream whatever key the client sent.
        self.azure_token = settings.compat.azure_token and self.open
        self.routes = {route.name: route for route in settings.routes}
        self.route_rings = rings
        self.rings = {
            "anthropic": KeyRing(p.anthropic_keys),
            "gemini": KeyRing(p.gemini_keys),
        }
        self.azure = AzurePool(p.azure)
        self.origins = {
            "anthropic": Origin(p.anthropic_base_url),
            "gemini": Origin(p.gemini_base_url),
        }

    @property
    def active(self) -> set[str]:
        return {provider for _, provider in self.settings.model_routes} - {"openai"}

    def provider_for(self, model: str) -> str:
        for pattern, provider in self.settings.model_routes:
            if fnmatchcase(model, pattern):
                return provider
        return "openai"

    def target(self, ex: Exchange, model: str, name: str) -> Target:
        """Where `model` goes for this exchange; raises if the provider cannot serve it."""
        if name == "openai" or name in self.routes:
            route: Route = ex.route if name == "openai" else self.routes[name]
            return Target(
                OpenAICompatible(),
                name,
                model,
                route.origin,
                self.route_rings.get(route.prefix),
                passthrough=True,
            )
        provider = self.providers[name]
        if ex.upstream_path not in provider.paths:
            raise UnsupportedFeature(
                f"{name} (model {model!r}) serves only "
                + ", ".join(p for p in provider.paths if p.startswith("/v1"))
                + f" through this gateway, not {ex.upstream_path}",
                param="model",
            )
        if name == "azure":
            if not self.azure.resources:
                raise InvalidRequest(
                    "MODEL_ROUTES sends this model to azure but AZURE_OPENAI_ENDPOINT is not set",
                    param="model",
                )
            deployment = self.settings.deployment(model)
            self.azure.pick(deployment, turn=False)  # fails now if no resource has it
            return Target(provider, name, model, None, None, deployment, self.azure, True)
        return Target(provider, name, model, self.origins[name], self.rings[name])

    def key(self, ex: Exchange, ring: KeyRing | None) -> str | None:
        """The client's own key in relay mode, else the provider's next real key."""
        if ex.key_kind is KeyKind.RELAY and ex.key is not None:
            return ex.key.value
        if ex.key_kind.ours or (ex.key_kind is KeyKind.NONE and self.open):
            return ring.next() if ring else None
        return None

    def plan(
        self, ex: Exchange, target: Target, body: JSON, dry: bool = False, track: bool = False
    ) -> UpstreamRequest:
        """The request for one attempt: a key (and Azure resource) picked anew each time.

        `dry` only checks that the request can be made: no key is taken. `track` (one
        target per exchange) shares the key with the retrier, which may pick the next.
        """
        origin, ring = target.origin, target.ring
        if target.azure is not None:
            resource, ring = target.azure.pick(target.deployment, turn=not dry)
            origin = resource.origin
        assert origin is not None
        credential = ex.credential
        if track and credential is not None and credential.ring is ring:
            key: str | None = credential.key  # a retry: the key rotation may have moved it
        else:
            key = None if dry else self.key(ex, ring)
            if key is not None and target.azure is not None and self.azure_token and ring:
                key = ring.next()
        if track and key is not None and ring is not None and ex.key_kind is not KeyKind.RELAY:
            # The exchange's credential: a 401/429 on it cools it down and rotates the ring.
            ex.credential = Credential(ring, key)
        endpoint = Endpoint(
            origin=origin,
            key=key,
            path=ex.upstream_path,
            raw_path=ex.raw_upstream_path,
            query=ex.query.decode("latin-1"),
            deployment=target.deployment,
            api_version=self.settings.azure_api_version,
            max_tokens=self.settings.anthropic_max_tokens,
        )
        built = build(target, body, endpoint)
        translate = (
            None
            if target.passthrough
            else translator(target.provider, target.model, include_usage(body))
        )
        return UpstreamRequest(
            "POST", built.url, built.headers, built.body, target.label, translate
        )


def build(target: Target, body: JSON, endpoint: Endpoint) -> ProviderRequest:
    """The provider's request; a translated body is checked for its shape first, and
    whatever else a translation trips on is the client's 400, never a crash."""
    if target.passthrough:
        return target.provider.build(body, endpoint)
    check_chat(body)
    try:
        return target.provider.build(body, endpoint)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise InvalidRequest(
            f"this request could not be translated for {target.provider.name} "
            f"({type(exc).__name__}: {exc}); check it against OpenAI's chat completions format",
            code="untranslatable",
        ) from None


def include_usage(body: JSON) -> bool:
    options: Any = body.get("stream_options")
    return (
        bool(body.get("stream"))
        and isinstance(options, dict)
        and options.get("include_usage") is True
    )
