"""Where an OpenAI-format reply carries generated text: one list for every reader of replies."""

from __future__ import annotations

import re

# Fields of a message (or of a streamed delta) that hold generated text.
TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
# The same in raw chunk bytes, plus a completion choice's `text` and a tool call's `arguments`.
GENERATED_TEXT = re.compile(
    rb'"(?:'
    + b"|".join(name.encode() for name in (*TEXT_FIELDS, "text", "arguments"))
    + rb')":\s*"((?:[^"\\]|\\.)*)"'
)
