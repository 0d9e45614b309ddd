"""deploy.md and the deployment files as the tests read them.

Every command in a ```bash block of deploy.md is either in RUN (with the test that runs it)
or in NOT_RUN (with the reason); test_deploy_docs.py checks that nothing is left out.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ai_forward.settings_doc import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_MD = ROOT / "deploy.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)

# Commands of deploy.md run by a test, as written there (after `localize`), and which test.
RUN: dict[str, str] = {
    "sudo python3 -m venv /opt/aifd": "test_deploy_pip.py::installed",
    "sudo /opt/aifd/bin/pip install .": "test_deploy_pip.py::installed",
    "/opt/aifd/bin/aifd run --help": "test_deploy_pip.py::test_installed_aifd_help",
    "sudo install -d -m 750 -o root -g aifd /etc/aifd": "test_deploy_pip.py::system_files",
    "sudo install -m 640 -o root -g aifd .env.example /etc/aifd/aifd.env": (
        "test_deploy_pip.py::system_files"
    ),
    "sudo cp deploy/aifd.service /etc/systemd/system/aifd.service": (
        "test_deploy_pip.py::system_files"
    ),
    "sudo systemd-analyze verify /etc/systemd/system/aifd.service": (
        "test_deploy_pip.py::test_systemd_unit_verifies"
    ),
    "curl -fsS http://127.0.0.1:8000/healthz": (
        "test_deploy_pip.py::test_unit_command_serves_from_the_state_directory"
    ),
    "aifd run --workers 2": "test_deploy_pip.py::test_installed_aifd_runs_two_workers",
    "pip uninstall -y openai-forward": "test_deploy_pip.py::test_upgrade_commands",
    "pip install .": "test_deploy_pip.py::test_upgrade_commands",
    "aifd run --port 8000": "test_deploy_pip.py::test_upgrade_commands",
    "cp .env.example .env": "test_deploy_pip.py::test_upgrade_commands",
    "sudo cp deploy/nginx.conf /etc/nginx/conf.d/aifd.conf": (
        "test_deploy_nginx.py::test_nginx_configs_pass_nginx_t"
    ),
    "sudo nginx -t": "test_deploy_nginx.py::test_nginx_configs_pass_nginx_t",
}

NOT_RUN: dict[str, str] = {
    "sudo useradd --system --no-create-home --home-dir /var/lib/aifd "
    "--shell /usr/sbin/nologin aifd": "creates a user on the host",
    "sudo systemctl daemon-reload": "needs systemd as PID 1; changes the host",
    "sudo systemctl enable --now aifd": "needs systemd as PID 1; changes the host",
    "journalctl -u aifd -f": "follows a journal forever",
    "docker build -t ai-forward .": "needs a Docker engine",
    "docker run -d --name aifd -p 8000:8000 --env-file .env -v aifd-data:/data "
    "--stop-timeout 45 ai-forward": "needs a Docker engine",
    "docker ps --filter name=aifd": "needs a Docker engine",
    "docker logs -f aifd": "needs a Docker engine",
    "docker compose -f deploy/docker-compose.yml up -d --build": "needs a Docker engine",
    "docker compose -f deploy/docker-compose.yml ps": "needs a Docker engine",
    "curl -fsS http://localhost:8000/healthz": "asks the compose stack, which needs Docker",
    "sudo systemctl reload nginx": "needs systemd as PID 1 and a system nginx",
}


def blocks(language: str) -> list[str]:
    """The ```language blocks of deploy.md, in order."""
    return [body for lang, body in _BLOCK.findall(DEPLOY_MD.read_text()) if lang == language]


def commands() -> list[str]:
    """Every command of deploy.md's bash blocks: continuations joined, comments dropped."""
    found: list[str] = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(re.sub(r"\s+", " ", line))
    return found


def command(text: str) -> str:
    """`text`, which must be a command of deploy.md and listed in RUN."""
    assert text in commands(), f"deploy.md no longer has the command {text!r}"
    assert text in RUN, f"{text!r} is run by a test but not listed in RUN"
    return text


def localize(text: str, paths: dict[str, str]) -> str:
    """A host-wide command made to run unprivileged inside the test's temporary paths."""
    text = text.removeprefix("sudo ").replace(" -o root -g aifd", "")
    for old, new in sorted(paths.items(), key=lambda item: -len(item[0])):
        # Only whole host paths: a temporary path that ends in /opt/aifd stays as it is.
        text = re.sub(r"(?<![\w./-])" + re.escape(old), new.replace("\\", "\\\\"), text)
    return text


def dotenv_blocks() -> list[dict[str, str]]:
    parsed = []
    for body in blocks("dotenv"):
        values = dotenv_values(stream=io.StringIO(body))
        parsed.append({k: v for k, v in values.items() if v is not None})
    return parsed


def known_settings() -> frozenset[str]:
    return frozenset(name for name, _, _ in SETTINGS)


def require(tool: str, install: str) -> str:
    """The path of `tool`; a missing prerequisite fails the test and says how to install it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is needed by the deployment tests and is not installed: {install}")
    return path
