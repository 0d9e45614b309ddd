"""`aifd run` as a user starts it: a subprocess on a free port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import openai

from tests.fakes import FakeUpstream, free_port
from tests.processes import AIFD, aifd_run, clean_env, wait_healthy


def test_open_access_is_refused_on_public_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AIFD, "run", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY="sk-secret-xyz"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "FORWARD_KEY" in result.stderr and "ALLOW_OPEN_ACCESS" in result.stderr
    assert "sk-secret-xyz" not in result.stderr + result.stdout


def test_bad_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EXTRA_BASE_URL=http://a,http://b\nEXTRA_ROUTE_PREFIX=/a\n")
    result = subprocess.run(
        [*AIFD, "run"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "EXTRA_ROUTE_PREFIX" in result.stderr


def test_run_reads_env_file_flags_win_and_keys_stay_out_of_logs(tmp_path: Path) -> None:
    upstream = FakeUpstream().start()
    port = free_port()
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        f"OPENAI_BASE_URL={upstream.url}\nOPENAI_API_KEY=sk-never-shown\nFORWARD_KEY=fk-cli\n"
        f"PORT=1\n"
    )
    try:
        with aifd_run(
            ["--env-file", str(env_file), "--port", str(port), "--host", "127.0.0.1"],
            clean_env(),
            tmp_path,
        ) as proc:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            sdk = openai.OpenAI(base_url=url + "/v1", api_key="fk-cli", max_retries=0)
            assert sdk.chat.completions.create(model="m", messages=[]).choices[0].message.content
            assert upstream.last.headers["authorization"] == "Bearer sk-never-shown"
            bad = openai.OpenAI(base_url=url + "/nope/v1", api_key="fk-cli", max_retries=0)
            assert bad.models.list() is not None  # "/" serves everything: relayed path
            proc.terminate()
            output = proc.communicate(timeout=10)[0]
        assert proc.returncode == 0
        assert "sk-never-shown" not in output
        assert "fk-cli" not in output
        assert "POST /v1/chat/completions -> 200" in output
    finally:
        upstream.stop()


def test_run_with_two_workers_serves(tmp_path: Path) -> None:
    upstream = FakeUpstream().start()
    port = free_port()
    try:
        env = clean_env(OPENAI_BASE_URL=upstream.url, FORWARD_KEY="fk", OPENAI_API_KEY="sk-w")
        with aifd_run(["--port", str(port), "--workers", "2"], env, tmp_path) as proc:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            for _ in range(6):
                assert (
                    httpx.get(
                        url + "/v1/models", headers={"authorization": "Bearer fk"}
                    ).status_code
                    == 200
                )
        assert len(upstream.requests) == 6
        assert {r.headers["authorization"] for r in upstream.requests} == {"Bearer sk-w"}
    finally:
        upstream.stop()


def test_help_shows_every_setting_and_its_example_values_literally() -> None:
    from ai_forward.settings_doc import SETTINGS

    result = subprocess.run(
        [*AIFD, "run", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean_env(), "COLUMNS": "1000"},
    )
    assert result.returncode == 0
    assert "MODEL_ROUTES [claude-*=anthropic;gemini-*=gemini]" in result.stdout
    for name, default, text in SETTINGS:
        assert f"{name} [{default or 'unset'}]: {text}" in result.stdout


def test_run_without_settings_says_it_relays_and_how_to_configure(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port = free_port()
    env = clean_env(OPENAI_BASE_URL=upstream.url, COLUMNS="1000")
    with aifd_run(["--port", str(port), "--host", "127.0.0.1"], env, tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="sk-client-own", max_retries=0)
        assert sdk.chat.completions.create(model="m", messages=[]).choices[0].message.content
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert upstream.last.headers["authorization"] == "Bearer sk-client-own"
    assert "relay mode" in output and "no keys are swapped" in output
    assert f"no {tmp_path.resolve() / '.env'}" in output
    assert "FORWARD_KEY" in output and "OPENAI_API_KEY" in output and ".env.example" in output


def test_run_with_keys_prints_no_relay_notice(tmp_path: Path) -> None:
    from ai_forward.cli import relay_only_notice
    from ai_forward.settings import Settings

    env_file = tmp_path / ".env"
    assert relay_only_notice(Settings.from_env({"FORWARD_KEY": "fk"}), env_file) is None
    assert relay_only_notice(Settings.from_env({"OPENAI_API_KEY": "sk"}), env_file) is None
    env_file.write_text("LOG_CHAT=true\n")
    notice = relay_only_notice(Settings.from_env({}), env_file)
    assert notice is not None and f"{env_file.resolve()} sets no keys" in notice


def test_openai_forward_log_chat_spelling_is_accepted() -> None:
    from ai_forward.cli import compatible_args

    assert compatible_args(["run", "--log_chat=True", "--port=9"]) == [
        "run",
        "--log-chat",
        "--port=9",
    ]
    assert compatible_args(["run", "--log_chat=false"]) == ["run"]
    assert compatible_args(["run", "--log_chat"]) == ["run", "--log_chat"]
