"""LOG_FORMAT=json: every line of `aifd run`, uvicorn's included, is one JSON object."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import openai

from tests.fakes import FakeUpstream
from tests.processes import aifd_instance


def test_json_logs_parse_line_by_line_with_one_line_per_request(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real-1",
        "FORWARD_KEY": "fk-test",
        "LOG_FORMAT": "json",
        "METRICS": "true",  # tokens are read from replies when a feature counts them
    }
    with aifd_instance(env, tmp_path) as (url, proc):
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="fk-test", max_retries=0)
        reply = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        listing = sdk.models.with_raw_response.list()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level"} <= line.keys() for line in lines)
    assert any("Uvicorn running" in line.get("message", "") for line in lines)
    assert any(line.get("message", "").startswith("ai-forward ") for line in lines)
    access = [line for line in lines if "request_id" in line]
    assert [line["request_id"] for line in access] == [
        reply.headers["x-request-id"],
        listing.headers["x-request-id"],
    ]
    chat, models = access
    assert reply.headers["x-request-id"] == "req-123"  # the upstream's own id
    assert len(models["request_id"]) == 16  # ours: the upstream sent none
    assert chat["route"] == "openai" and chat["model"] == "gpt-4o-mini"
    assert chat["status"] == 200 and chat["attempts"] == 1
    assert chat["tokens_in"] == 5 and chat["tokens_out"] == 2
    assert chat["upstream_ms"] >= 0 and chat["added_ms"] >= 0 and chat["ms"] >= chat["added_ms"]
    assert "sk-real-1" not in output and "fk-test" not in output
