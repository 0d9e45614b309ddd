"""Client IPs: the socket peer, X-Forwarded-For only from trusted proxies; IP lists answer 403."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from ai_forward.clientip import client_address
from ai_forward.env import parse_networks
from ai_forward.settings import Settings
from tests.fakes import FakeUpstream, ProxyServer

Factory = Callable[..., ProxyServer]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def post(proxy: ProxyServer, forwarded: str | None = None) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return httpx.post(proxy.url + "/v1/chat/completions", json=BODY, headers=headers)


def test_blacklisted_ip_gets_403_and_nothing_goes_upstream(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, IP_BLACKLIST="10.0.0.0/8,127.0.0.1")
    with pytest.raises(openai.PermissionDeniedError) as info:
        openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0).models.list()
    assert "IP_BLACKLIST" in info.value.message
    assert info.value.code == "ip_forbidden"
    assert upstream.requests == []


@pytest.mark.parametrize(("whitelist", "status"), [("10.0.0.0/8", 403), ("127.0.0.0/8", 200)])
def test_whitelist_admits_only_listed_ips(
    upstream: FakeUpstream, proxy_factory: Factory, whitelist: str, status: int
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, IP_WHITELIST=whitelist)
    response = post(proxy)
    assert response.status_code == status
    if status == 403:
        assert "IP_WHITELIST" in response.json()["error"]["message"]


def test_forwarded_for_is_ignored_from_untrusted_peers(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, IP_BLACKLIST="203.0.113.7")
    assert post(proxy, "203.0.113.7").status_code == 200
    assert upstream.last.headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"


def test_trusted_proxy_names_the_client_for_lists_and_limits(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        TRUSTED_PROXIES="127.0.0.1",
        IP_BLACKLIST="203.0.113.7",
        REQ_RATE_LIMIT="1/minute",
    )
    assert post(proxy, "203.0.113.7").status_code == 403
    # The nearest untrusted hop is the client: what it claims before that is its own business.
    assert post(proxy, "203.0.113.7, 198.51.100.2").status_code == 200
    assert upstream.last.headers["x-forwarded-for"] == "203.0.113.7, 198.51.100.2, 127.0.0.1"
    assert post(proxy, "198.51.100.3").status_code == 200  # another client, its own counter
    assert post(proxy, "198.51.100.2").status_code == 429


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "1.2.3.4, 10.0.0.5", "1.2.3.4"),
        ("127.0.0.1", "10.0.0.6, 10.0.0.5", "10.0.0.6"),
        ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", "1.2.3.4:5555", "1.2.3.4"),
        ("127.0.0.1", "garbage, 1.2.3.4, nonsense", "127.0.0.1"),
        ("192.0.2.1", "1.2.3.4", "192.0.2.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_client_address_walks_the_chain_from_the_right(
    peer: str, forwarded: str | None, client: str
) -> None:
    trusted = parse_networks("TRUSTED_PROXIES", ("127.0.0.1", "10.0.0.0/8"))
    raw = forwarded.encode() if forwarded is not None else None
    assert client_address(peer, raw, trusted) == client


def test_ip_lists_take_addresses_and_networks() -> None:
    settings = Settings.from_env(
        {"IP_WHITELIST": "10.0.0.0/8, 192.168.1.7", "TRUSTED_PROXIES": "::1,127.0.0.1"}
    ).client_ip
    assert [str(n) for n in settings.ip_whitelist] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert [str(n) for n in settings.trusted_proxies] == ["::1/128", "127.0.0.1/32"]
