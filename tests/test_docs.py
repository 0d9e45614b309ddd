"""Every setting is documented where users look: `aifd run --help`, README and .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_forward.settings_doc import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = [name for name, _, _ in SETTINGS if name not in text]
    assert missing == []
