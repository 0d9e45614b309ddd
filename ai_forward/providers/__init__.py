"""One module per provider, behind the interface in `base.py`; picked by name from PROVIDERS."""

from __future__ import annotations

from .anthropic import Anthropic
from .azure import Azure
from .base import Provider
from .gemini import Gemini
from .openai import OpenAICompatible


def registry(anthropic_version: str = "2023-06-01") -> dict[str, Provider]:
    """The built-in providers by name; any other name is an OpenAI-compatible route."""
    return {
        "openai": OpenAICompatible(),
        "azure": Azure(),
        "anthropic": Anthropic(anthropic_version),
        "gemini": Gemini(),
    }
