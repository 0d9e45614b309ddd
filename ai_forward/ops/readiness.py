"""`/readyz`: whether this instance can serve, checking what it depends on.

Every probe the features contribute (rate limit storage, user store, chat-log
writer) runs at once, each bounded by PROBE_TIMEOUT. 200 names what was checked;
503 is an OpenAI-shaped error whose message names what is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from ..errors import error_body
from ..pipeline import Probe
from ..types import Send

PROBE_TIMEOUT = 2.0


async def run_probe(probe: Probe) -> str | None:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            return await probe.check()
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g}s"
    except Exception as exc:  # a probe's own fault still means "not ready"
        return f"check failed ({type(exc).__name__})"


async def check_all(probes: Sequence[Probe]) -> dict[str, str]:
    """Each probe's name and "ok" or what is wrong."""
    results = await asyncio.gather(*(run_probe(probe) for probe in probes))
    return {probe.name: result or "ok" for probe, result in zip(probes, results, strict=True)}


async def send_readiness(send: Send, probes: Sequence[Probe]) -> None:
    checks = await check_all(probes)
    down = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    if down:
        status = 503
        body = orjson.loads(
            error_body("not ready: " + "; ".join(down), "server_error", "not_ready", None)
        )
        payload = orjson.dumps({**body, "status": "unavailable", "checks": checks})
    else:
        status = 200
        payload = orjson.dumps({"status": "ready", "checks": checks})
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
