"""Azure OpenAI: OpenAI's format at a deployment URL, with an `api-key` header."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from .base import JSON, Endpoint, ProviderRequest
from .openai import OpenAICompatible

# Client path -> the operation under /openai/deployments/{deployment}.
OPERATIONS = {
    "/v1/chat/completions": "/chat/completions",
    "/chat/completions": "/chat/completions",
    "/v1/completions": "/completions",
    "/completions": "/completions",
    "/v1/embeddings": "/embeddings",
    "/embeddings": "/embeddings",
}


class Azure(OpenAICompatible):
    name: str = "azure"
    paths: tuple[str, ...] = tuple(OPERATIONS)

    def build(self, body: JSON, endpoint: Endpoint) -> ProviderRequest:
        deployment = quote(endpoint.deployment, safe="-._")
        version = quote(endpoint.api_version, safe="-._")
        url = endpoint.origin.url(
            f"/openai/deployments/{deployment}{OPERATIONS[endpoint.path]}",
            f"api-version={version}",
        )
        headers = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]
        if endpoint.key:
            headers.append((b"api-key", endpoint.key.encode()))
        return ProviderRequest(url, headers, orjson.dumps(body))
