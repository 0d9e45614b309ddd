"""CACHE_* settings: openai-forward's values, and bad values named at start-up."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ai_forward.env import SettingsError
from ai_forward.settings import Settings
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN


def test_openai_forward_settings_keep_their_meaning() -> None:
    cache = Settings.from_env(
        {
            "CACHE_BACKEND": "LMDB",
            "CACHE_ROUTES": '["/v1/chat/completions","/v1/embeddings/"]',
            "DEFAULT_REQUEST_CACHING_VALUE": "true",
        }
    ).cache
    assert cache.backend == "sqlite:///aifd-cache.db"
    assert cache.note is not None and "LMDB" in cache.note
    assert cache.routes == {"/v1/chat/completions", "/v1/embeddings"}
    assert cache.default is True
    assert Settings.from_env({"CACHE_BACKEND": "MEMORY"}).cache.backend == "memory"
    assert Settings.from_env({"CACHE_BACKEND": "LevelDB"}).cache.note is not None


def test_defaults_are_memory_client_scope_and_opt_in() -> None:
    cache = Settings.from_env({}).cache
    assert (cache.backend, cache.shared, cache.default, cache.routes) == (
        "memory",
        False,
        False,
        frozenset(),
    )
    assert Settings.from_env({"CACHE_ROUTES": "/v1/chat/completions, /v1/responses"}).cache.routes


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHE_BACKEND", "mongodb://x"),
        ("CACHE_ROUTES", '["/v1/chat/completions"'),
        ("CACHE_SCOPE", "global"),
        ("CACHE_TTL", "-1"),
        ("CACHE_MAX_BYTES", "lots"),
        ("DEFAULT_REQUEST_CACHING_VALUE", "maybe"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_start_up_notes_a_mapped_backend(
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    loguru_lines: list[str],
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(str(tmp_path))
    proxy_factory(OPENAI_BASE_URL=upstream.url, CACHE_BACKEND="LMDB")
    assert any("CACHE_BACKEND=LMDB is openai-forward's" in line for line in loguru_lines)


def test_admin_cache_errors_are_openai_shaped(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: object
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, ADMIN_TOKEN=TOKEN, STORE_URL=f"sqlite:///{tmp_path}/u.db"
    )
    admin = {"authorization": f"Bearer {TOKEN}"}
    bad = httpx.delete(proxy.url + "/admin/cache", params={"older_than": "soon"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "older_than"
    wrong = httpx.post(proxy.url + "/admin/cache", headers=admin)
    assert wrong.status_code == 405 and "DELETE" in wrong.json()["error"]["message"]
    assert httpx.get(proxy.url + "/admin/users", headers=admin).status_code == 200
    assert httpx.delete(proxy.url + "/admin/cache", headers=admin).json() == {"deleted": 0}
