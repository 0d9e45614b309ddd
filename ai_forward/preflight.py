"""What `aifd run` checks in valid settings before serving them: example values and comments.

The example values in .env.example, README.md and deploy.md are public. As FORWARD_KEY or
ADMIN_TOKEN they would let anyone in, so they are refused on an address others can reach
and warned about on loopback. As an upstream key they only fail upstream (or stand in for
a key a local server does not check), so they are warned about. Nothing here prints a
setting's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .env import is_loopback

# The secrets clients are checked against: an example value here opens the gateway.
CLIENT_SECRETS = ("FORWARD_KEY", "ADMIN_TOKEN")
UPSTREAM_KEYS = (
    "OPENAI_API_KEY",
    "EXTRA_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "HOST_KEYS",
)
# Every example value the documentation shows for a secret, in one place; the forms below
# cover the masked ones (sk-xxx1, gsk-xxx, AIza-xxx) and the elided ones (sk-..., AIza...).
PLACEHOLDERS = frozenset(
    {
        "fk-change-me",
        "fk-my-secret",
        "replace-with-the-generated-token",
        "sk-real-key",
        "sk-real-key-1",
        "sk-real-key-2",
        "token-vllm",
        "azure-key",
        "key-a",
        "key-b1",
        "key-b2",
        "gsk-1",
        "gsk-2",
        "sk-ant-1",
        "sk-ant-2",
    }
)
_PLACEHOLDER_FORMS = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*(?:-xxx\d*|-?\.\.\.)")
_SEPARATORS = re.compile(r"[,|=\s]+")


def is_placeholder(value: str) -> bool:
    """Whether `value` is one of the documentation's example secrets."""
    return value in PLACEHOLDERS or _PLACEHOLDER_FORMS.fullmatch(value) is not None


@dataclass
class Preflight:
    """What to refuse to serve (`problem`) and what to warn about."""

    problem: str | None = None
    warnings: list[str] = field(default_factory=list)


def inline_comments(env: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    """Warnings about values of `names` that look like they hold an inline comment."""
    return [
        f"{name} holds ' #': is an inline comment part of its value? `docker run --env-file` "
        f"keeps everything after '=', comments too; put comments on their own line"
        for name in names
        if " #" in env.get(name, "") or "\t#" in env.get(name, "")
    ]


def example_secrets(env: Mapping[str, str], host: str) -> Preflight:
    """Refuse (on a public `host`) or warn about example values in secret settings."""
    result = Preflight()
    for name in CLIENT_SECRETS + UPSTREAM_KEYS:
        value = env.get(name)
        if value is None or not any(is_placeholder(p) for p in _SEPARATORS.split(value.strip())):
            continue
        if name in CLIENT_SECRETS:
            advice = (
                f"{name} is an example value from the documentation, which anyone can read; "
                f"set your own secret, e.g. from "
                f"`python -c 'import secrets; print(secrets.token_urlsafe())'`"
            )
            if is_loopback(host):
                result.warnings.append(advice + " (accepted only because HOST is loopback)")
            elif result.problem is None:
                result.problem = f"refusing to start on {host}: {advice}"
        else:
            result.warnings.append(
                f"{name} holds an example value from the documentation, not a real key; "
                f"the upstream will refuse it unless it checks no key"
            )
    return result
