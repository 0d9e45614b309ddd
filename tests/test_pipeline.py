"""The plug-in contract: features fold in the one written order; modules import alone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ai_forward.app import FEATURES, Gateway, fold
from ai_forward.budgets.hook import BudgetHook
from ai_forward.cache.hook import CacheHook
from ai_forward.chatlog.hook import ChatLogHook
from ai_forward.clientip import ClientIPHook
from ai_forward.dashboard.activity import Activity
from ai_forward.exchange import Exchange
from ai_forward.keyhook import KeyHook
from ai_forward.ops.tally import Tally
from ai_forward.pipeline import Attempt, Contribution, Planner, Retrier, Shared
from ai_forward.providers.hook import ProviderHook
from ai_forward.ratelimit.hook import LimitHook
from ai_forward.redact import Redactor
from ai_forward.settings import Route, Settings
from ai_forward.upstream import UpstreamRequest, UpstreamResponse
from ai_forward.users.hook import UsersHook

ROOT = Path(__file__).resolve().parent.parent
# Each module imported first in its own forked interpreter: a circle fails there.
IMPORT_EACH = """
import os, pkgutil, sys
import ai_forward
names = [m.name for m in pkgutil.walk_packages(ai_forward.__path__, "ai_forward.")]
failed = []
for name in names:
    if name == "ai_forward.__main__":
        continue
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException as exc:
            print(name, type(exc).__name__, exc)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print(len(names), "modules;", "failed:", failed)
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone_without_a_circle() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed: []" in done.stdout


def test_importing_the_package_does_not_import_the_server() -> None:
    code = "import sys, ai_forward; print(sorted(m for m in sys.modules if m in WATCH))"
    code = code.replace("WATCH", repr({"ai_forward.app", "uvicorn", "aiohttp", "starlette"}))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_app_runs_hooks_in_the_order_of_its_feature_list(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": "sk-real",
            "FORWARD_KEY": "fk",
            "TRUSTED_PROXIES": "127.0.0.1",
            "ADMIN_TOKEN": "t" * 32,
            "STORE_URL": f"sqlite:///{tmp_path}/users.db",
            "REQ_RATE_LIMIT": "60/minute",
            "LOG_CHAT": "true",
            "LOG_DIR": str(tmp_path / "Log"),
            "MODEL_PRICES": "gpt-4o*=2.5/10",
            "METRICS": "true",
        }
    )
    gateway = Gateway(settings)
    kinds = [type(hook) for hook in gateway.forwarder.hooks]
    assert kinds == [
        Activity,
        ClientIPHook,
        KeyHook,
        UsersHook,
        ProviderHook,
        LimitHook,
        BudgetHook,
        ChatLogHook,
        CacheHook,
    ]
    assert [prefix for prefix, _ in gateway.mounts] == [
        "/admin/cache",
        "/admin/ui",
        "/metrics",
        "/v1/aifd",
        "/admin",
    ]
    assert [type(reporter) for reporter in gateway.forwarder.reporters] == [Tally]
    assert gateway.forwarder.retrier is not None
    assert len(FEATURES) == 14


class Named:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def before(self, ex: Exchange) -> None:
        self.log.append(self.name)

    async def after(self, ex: Exchange) -> None:
        return None


def test_fold_keeps_feature_order_and_wraps_each_planner_around_the_ones_before() -> None:
    log: list[str] = []

    def wrap(name: str) -> Contribution:
        def wrap_planner(below: Planner) -> Planner:
            def plan(ex: Exchange) -> UpstreamRequest:
                log.append(name)
                return below(ex)

            return plan

        return Contribution(hooks=(Named(name, log),), wrap_planner=wrap_planner)

    pipeline = fold(
        [lambda s, sh: wrap("first"), lambda s, sh: Contribution(), lambda s, sh: wrap("last")],
        Settings(),
        Shared({}, Redactor([])),
    )
    assert [hook.name for hook in pipeline.hooks] == ["first", "last"]  # type: ignore[attr-defined]
    assert pipeline.retrier is None and pipeline.mounts == ()
    route = Route("/", "http://upstream.test")
    ex = Exchange(
        scope={},
        route=route,
        method="GET",
        path="/v1/models",
        upstream_path="/v1/models",
        raw_upstream_path="/v1/models",
        query=b"",
        headers=[],
        body=b"",
        client_ip="10.0.0.1",
    )
    request = pipeline.planner(ex)
    assert log == ["last", "first"]  # the later feature's planner is the outer one
    assert str(request.url) == "http://upstream.test/v1/models"  # the passthrough at the core


def test_fold_wraps_the_retrier_with_a_later_features_outer_loop() -> None:
    seen: list[str] = []

    async def retrier(ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        seen.append("retrier")
        return await attempt()

    def outer(inner: Retrier) -> Retrier:
        async def walk(ex: Exchange, attempt: Attempt) -> UpstreamResponse:
            seen.append("outer")
            return await inner(ex, attempt)

        return walk

    inner = Contribution(retrier=retrier)
    wrapper = Contribution(wrap_retrier=outer)
    shared = Shared({}, Redactor([]))
    wrapped = fold([lambda s, sh: inner, lambda s, sh: wrapper], Settings(), shared)
    alone = fold([lambda s, sh: wrapper], Settings(), shared)
    assert wrapped.retrier is not None and alone.retrier is not None
    answer = object()

    async def attempt() -> UpstreamResponse:
        seen.append("attempt")
        return answer  # type: ignore[return-value]

    assert asyncio.run(wrapped.retrier(None, attempt)) is answer  # type: ignore[arg-type]
    assert seen == ["outer", "retrier", "attempt"]
    seen.clear()
    assert asyncio.run(alone.retrier(None, attempt)) is answer  # type: ignore[arg-type]
    assert seen == ["outer", "attempt"]  # without a retrier: one attempt
