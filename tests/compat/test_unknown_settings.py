"""Start-up names every setting it will not use, once each, with what to write instead."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fakes import free_port
from tests.processes import aifd_run, clean_env, wait_healthy


def test_env_file_with_three_unknown_names_starts_with_three_warnings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "REQ_RATE_LIMT=60/minute\nWEBUI_LOG_PORT=15556\nSOMETHING_ELSE=1\nTIMEOUT=6\n"
        "GLOBAL_RATE_LIMIT=200/minute\n"
    )
    port = free_port()
    env = clean_env(AIFD_TEST_UNUSED="x", OPENAI_BASE_URLL="http://x")
    with aifd_run(["--host", "127.0.0.1", "--port", str(port)], env, tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        assert httpx.get(url + "/healthz").status_code == 200
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    unknown = [
        line for line in output.splitlines() if "not a setting" in line or "not used" in line
    ]
    assert len(unknown) == 4, output  # three in .env, one prefixed name in the environment
    assert (
        "REQ_RATE_LIMT (in .env) is not a setting of ai-forward, ignored; "
        "did you mean REQ_RATE_LIMIT?" in output
    )
    assert "WEBUI_LOG_PORT (in .env) is not used here: there is no web UI" in output
    assert "SOMETHING_ELSE (in .env)" in output
    assert (
        "OPENAI_BASE_URLL (in the environment)" in output
        and "did you mean OPENAI_BASE_URL?" in output
    )
    assert "AIFD_TEST_UNUSED" not in output  # not one of our prefixes, not in .env
    # Settings whose meaning differs from openai-forward's are explained.
    assert "GLOBAL_RATE_LIMIT=200/minute counts every request" in output
    assert "write REQ_RATE_LIMIT=200/minute" in output
    assert "TIMEOUT=6 bounds connecting to an upstream only" in output


def test_settings_errors_are_all_reported_by_aifd_run(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIMEOUT=soon\nWORKERS=many\nLEVEL_MODELS=[1]\n")
    with aifd_run([], clean_env(), tmp_path) as proc:
        proc.wait(20)
        output = proc.communicate(timeout=5)[0]
    assert proc.returncode == 2
    for name in ("TIMEOUT='soon'", "WORKERS='many'", "LEVEL_MODELS: expected"):
        assert name in output, output
