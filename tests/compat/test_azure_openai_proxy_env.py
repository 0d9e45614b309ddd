"""An azure-openai-proxy environment, served as that project documents: every model to
Azure through its mapper, its API version, its one token, and `/v1/models` asking no one
else; and its forward-proxy use (the client's HTTP_PROXY pointing at the gateway)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from tests.fakes import FakeUpstream, ProxyServer


def azure_env(endpoint: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": endpoint,
        "AZURE_OPENAI_APIVERSION": "2023-03-15-preview",
        "AZURE_OPENAI_MODEL_MAPPER": "gpt-4=gpt4-deploy",
        "AZURE_OPENAI_TOKEN": "azure-token-value",
        "AZURE_OPENAI_PROXY_MODE": "reverse",
        "HOST": "127.0.0.1",
    }


def test_azure_style_env_maps_models_and_sends_its_token_in_place_of_the_clients_key(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(**azure_env(upstream.url))
    sdk = openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="whatever-the-client-has", max_retries=0
    )
    sdk.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}])
    sent = upstream.last
    assert sent.path == "/openai/deployments/gpt-35-turbo/chat/completions"
    assert sent.query == "api-version=2023-03-15-preview"
    assert sent.headers["api-key"] == "azure-token-value"
    assert "whatever-the-client-has" not in str(sent.raw_headers)
    sdk.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert upstream.last.path == "/openai/deployments/gpt4-deploy/chat/completions"


def test_models_with_only_azure_configured_ask_no_other_upstream(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(**azure_env(upstream.url))
    answer = httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer sk-client"})
    assert answer.status_code == 200
    ids = {m["id"] for m in answer.json()["data"]}
    assert {"gpt-3.5-turbo", "gpt-4"} <= ids
    assert upstream.requests == []  # and, had it asked api.openai.com, the test would hang


def test_client_using_the_gateway_as_http_proxy_reaches_the_upstream(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real-fp", FORWARD_KEY="fk-forward-proxy"
    )
    # As a client with HTTP_PROXY=http://gateway:port sends it: the absolute URL as target.
    with httpx.Client(proxy=proxy.url) as through:
        answer = through.post(
            upstream.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer fk-forward-proxy"},
        )
    assert answer.status_code == 200
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == "Bearer sk-real-fp"
