"""deploy.md itself: every command accounted for, every example valid, every link alive."""

from __future__ import annotations

import re
from collections.abc import Callable

from openai import OpenAI

from ai_forward import Settings
from tests.deploy_doc import (
    DEPLOY_MD,
    NOT_RUN,
    ROOT,
    RUN,
    blocks,
    commands,
    dotenv_blocks,
    known_settings,
)
from tests.fakes import FakeUpstream, ProxyServer

# openai-forward's settings (its README, /work/shared/seeds/004): what carries over.
OPENAI_FORWARD_SETTINGS = {
    "OPENAI_BASE_URL",
    "OPENAI_ROUTE_PREFIX",
    "OPENAI_API_KEY",
    "FORWARD_KEY",
    "EXTRA_BASE_URL",
    "EXTRA_ROUTE_PREFIX",
    "LOG_CHAT",
}
# Upper-case words in deploy.md that are not ai-forward settings.
NOT_SETTINGS = {"SIGTERM", "OWNER", "API_KEY"}  # API_KEY: LocalAI's own setting


def test_every_command_is_run_by_a_test_or_says_why_not() -> None:
    documented = commands()
    assert len(documented) == len(set(documented)), "a command is listed twice in deploy.md"
    assert set(RUN).isdisjoint(NOT_RUN)
    assert sorted(set(documented) - set(RUN) - set(NOT_RUN)) == []  # unaccounted for
    assert sorted((set(RUN) | set(NOT_RUN)) - set(documented)) == []  # no longer documented
    for where in RUN.values():
        file, name = where.split("::")
        source = (ROOT / "tests" / file).read_text()
        assert f"def {name}(" in source, where


def test_links_point_at_files_that_exist() -> None:
    text = DEPLOY_MD.read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), target
    anchors = re.findall(r"\]\(#([^)]+)\)", text)
    headings = {
        re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", text, re.MULTILINE)
    }
    assert set(anchors) <= headings


def test_settings_named_in_deploy_md_exist() -> None:
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", DEPLOY_MD.read_text()))
    for block in dotenv_blocks():
        named |= set(block)
    assert sorted(named - known_settings() - NOT_SETTINGS) == []


def test_every_dotenv_example_starts() -> None:
    examples = dotenv_blocks()
    assert len(examples) == 3
    for env in examples:
        settings = Settings.from_env(env)
        assert settings.open_access_problem() is None


def test_upgrade_example_uses_only_openai_forward_names() -> None:
    (old,) = [env for env in dotenv_blocks() if "LOG_CHAT" in env]
    assert set(old) <= OPENAI_FORWARD_SETTINGS
    routes = Settings.from_env(old).routes
    assert [(r.prefix, r.base_url, r.keys) for r in routes] == [
        ("/", "https://api.openai.com", ("sk-xxx1", "sk-xxx2")),
        ("/localai", "http://localhost:8080", ()),
    ]


def test_local_model_servers_are_reached_through_their_routes(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    (env,) = [e for e in dotenv_blocks() if "EXTRA_BASE_URL" in e and "LOG_CHAT" not in e]
    prefixes, urls = env["EXTRA_ROUTE_PREFIX"].split(","), env["EXTRA_BASE_URL"].split(",")
    servers = dict(zip(prefixes, urls, strict=True))
    assert servers == {
        "/localai": "http://127.0.0.1:8080",
        "/vllm": "http://127.0.0.1:8001",
        "/ollama": "http://127.0.0.1:11434",
    }
    # Each local server becomes a path on the fake upstream, so the test sees who got what.
    env["EXTRA_BASE_URL"] = ",".join(f"{upstream.url}/{p.strip('/')}-server" for p in servers)
    env["OPENAI_BASE_URL"] = f"{upstream.url}/openai-server"
    gateway = proxy_factory(**env)
    seen = {}
    for prefix in ("/localai", "/vllm", "/ollama", ""):
        client = OpenAI(base_url=f"{gateway.url}{prefix}/v1", api_key="fk-my-secret")
        reply = client.chat.completions.create(
            model="llama3", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "Hello!"
        seen[prefix] = (upstream.last.path, upstream.last.headers.get("authorization"))
    assert seen == {
        "/localai": ("/localai-server/v1/chat/completions", None),
        "/vllm": ("/vllm-server/v1/chat/completions", "Bearer token-vllm"),
        "/ollama": ("/ollama-server/v1/chat/completions", None),
        "": ("/openai-server/v1/chat/completions", "Bearer sk-real-key"),
    }


def test_env_file_examples_hold_no_inline_comments() -> None:
    """`docker run --env-file` keeps ` # ...` in the value: comments go on their own lines."""
    examples = [("deploy.md", body) for body in blocks("dotenv")]
    examples.append((".env.example", (ROOT / ".env.example").read_text()))
    assert len(examples) == 4
    for where, text in examples:
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert " #" not in line and "\t#" not in line, (where, line)
