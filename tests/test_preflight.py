"""`aifd run` refuses the documentation's example secrets in public and warns about comments."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from ai_forward.preflight import CLIENT_SECRETS, UPSTREAM_KEYS, is_placeholder
from tests.fakes import free_port
from tests.processes import AIFD, ROOT, aifd_run, clean_env, wait_healthy

DOCUMENTS = [".env.example", "README.md", "deploy.md", "render.yaml"] + [
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "deploy").iterdir())
]


def refused(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIFD, "run", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT), OPENAI_API_KEY="sk-secret-xyz", **env),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FORWARD_KEY", "fk-change-me"),
        ("FORWARD_KEY", "fk-my-secret"),
        ("FORWARD_KEY", "fk-real-one-Qx81,fk-xxx1"),
        ("ADMIN_TOKEN", "replace-with-the-generated-token"),
    ],
)
def test_documented_example_secret_is_refused_on_a_public_address(
    tmp_path: Path, name: str, value: str
) -> None:
    result = refused(tmp_path, **{name: value})
    assert result.returncode == 2
    assert name in result.stderr and "example value" in result.stderr
    assert "0.0.0.0" in result.stderr
    for secret in (*value.split(","), "sk-secret-xyz"):
        assert secret not in result.stdout + result.stderr


def test_example_secret_on_loopback_starts_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(FORWARD_KEY="fk-change-me", ADMIN_TOKEN="replace-with-the-generated-token")
    with aifd_run(["--host", "127.0.0.1", "--port", str(port)], env, tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        assert httpx.get(url + "/healthz").status_code == 200
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    for name in ("FORWARD_KEY", "ADMIN_TOKEN"):
        assert f"warning: {name} is an example value" in output
    assert "fk-change-me" not in output and "replace-with-the-generated-token" not in output


def test_inline_comment_in_a_value_is_warned_about_without_showing_it(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        HOST="127.0.0.1",
        PORT=str(port),
        FORWARD_KEY="fk-Jq81vXz0-secret   # what your clients send",
        TIMEOUT="300 # seconds",
    )
    with aifd_run([], env, tmp_path) as proc:
        proc.wait(20)
        output = proc.communicate(timeout=5)[0]
    # TIMEOUT's value is no number: start-up stops, but the comment is named first.
    assert proc.returncode == 2
    assert "FORWARD_KEY holds ' #'" in output and "TIMEOUT holds ' #'" in output
    assert "fk-Jq81vXz0" not in output and "what your clients send" not in output


def test_every_secret_shown_in_the_documentation_is_a_known_placeholder() -> None:
    names = "|".join(CLIENT_SECRETS + UPSTREAM_KEYS)
    shown = re.compile(rf"\b({names})=([^\s`'\"]+)")
    found = []
    for document in DOCUMENTS:
        for name, value in shown.findall((ROOT / document).read_text()):
            if value.startswith(("$", "<", "{")):
                continue  # a variable or a template, not a value
            for part in re.split(r"[,|]", value):
                if part:
                    found.append((document, name, part.rpartition("=")[2]))
    assert {name for _, name, _ in found} >= set(CLIENT_SECRETS)
    assert [f for f in found if not is_placeholder(f[2])] == []


@pytest.mark.parametrize("value", ["sk-proj-Jq81vXz0aBcD", "fk-7Hk2pQ", "Xxx-xxx-xxxx", "sk-xxxy"])
def test_real_looking_secrets_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)
