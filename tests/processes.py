"""`aifd run` as a user starts it: a real subprocess on a free port, for multi-process tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fakes import free_port

ROOT = Path(__file__).resolve().parent.parent
AIFD = [sys.executable, "-m", "ai_forward"]
# Settings a developer's shell might hold; tests start from a clean slate.
_OURS = (
    "OPENAI_",
    "EXTRA_",
    "FORWARD_",
    "ALLOW_",
    "LOG_",
    "RATE_",
    "REQ_",
    "TPM_",
    "TOKEN_",
    "GLOBAL_",
    "STORE_",
    "ADMIN_",
    "ANTHROPIC_",
    "GEMINI_",
    "AZURE_",
    "MODEL_",
    "HOST",
    "PORT",
    "WORKERS",
    "RETRIES",
    "RETRY_",
    "KEY_",
    "IDLE_",
    "FIRST_",
    "CONNECT_",
    "SHUTDOWN_",
    "IP_",
    "TRUSTED_",
    "TIMEOUT",
    "PROXY",
    "CORS_",
    "MAX_BODY",
    "BODY_TIMEOUT",
    "ACCESS_LOG",
    "CACHE_",
    "DEFAULT_REQUEST_CACHING",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without ai-forward settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(extra)
    return env


@contextmanager
def aifd_run(args: list[str], env: Mapping[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`aifd run ARGS` with exactly `env`; terminated (SIGTERM) when the block ends."""
    # This checkout's code, whichever checkout `pip install -e` pointed at.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with serving([*AIFD, "run", *args], {"PYTHONPATH": path, **env}, cwd) as proc:
        yield proc


@contextmanager
def serving(argv: list[str], env: Mapping[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """A server process (output captured); SIGTERM, then SIGKILL after 20 s, at the end."""
    proc = subprocess.Popen(
        argv, env=dict(env), cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_healthy(url: str, proc: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("aifd run did not become healthy")


@contextmanager
def aifd_instance(
    env: Mapping[str, str], cwd: Path, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A healthy `aifd run` on 127.0.0.1 and a free port: yields (base URL, process)."""
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with aifd_run(args, clean_env(**env), cwd) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, proc
