"""openai-forward's levels: a forward key of level N gets a real key of level N and may
use only the models of level N (level 0: every model); others are refused with 403."""

from __future__ import annotations

from ..errors import Forbidden
from ..exchange import KEY_LEVEL, BeforeOnly, Exchange
from ..keys import Credential, KeyKind, KeyRing
from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from .settings import Levels


class LevelHook(BeforeOnly):
    """Runs after the key swap: narrows a forward key's real key and models to its level."""

    def __init__(self, levels: Levels, shared: Shared) -> None:
        self.levels = levels
        self.rings = {level: KeyRing(keys) for level, keys in levels.keys.items()}
        self.routes_with_keys = frozenset(shared.rings)

    async def before(self, ex: Exchange) -> None:
        levels = self.levels
        if ex.key_kind is not KeyKind.FORWARD or ex.key is None:
            ex.set(KEY_LEVEL, levels.default)
            return
        level = levels.forward.get(ex.key.value, 0)
        ex.set(KEY_LEVEL, level)
        if ex.route.prefix in self.routes_with_keys and level in self.rings:
            ex.credential = Credential.draw(self.rings[level])
        allowed = levels.models.get(level)
        if level == 0 or allowed is None:
            return
        model = ex.model
        if model is not None and model not in allowed:
            raise Forbidden(
                f"model: {model} is not allowed for this key (level {level}); it may use: "
                + ", ".join(sorted(allowed)),
                code="model_not_allowed",
                param="model",
            )


def install(settings: Settings, shared: Shared) -> Contribution:
    levels = settings.compat.levels
    return Contribution(hooks=(LevelHook(levels, shared),)) if levels.active else NOTHING
