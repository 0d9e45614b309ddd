"""The built-in providers by name; adding one is one module, one line here, one test file."""

from __future__ import annotations

from .anthropic import Anthropic
from .azure import Azure
from .base import Provider
from .gemini import Gemini
from .openai import OpenAICompatible


def registry(anthropic_version: str) -> dict[str, Provider]:
    """The built-in providers by name; any other name is an OpenAI-compatible route."""
    return {
        "openai": OpenAICompatible(),
        "azure": Azure(),
        "anthropic": Anthropic(anthropic_version),
        "gemini": Gemini(),
    }
