from __future__ import annotations

import pytest

from ai_forward.routing import Matched, RouteTable
from ai_forward.settings import Route, Settings, SettingsError
from ai_forward.target import parse_target


def test_defaults_follow_openai_forward() -> None:
    settings = Settings.from_env({})
    assert settings.routes == (Route("/", "https://api.openai.com", (), "openai"),)
    assert settings.max_body_size == 100 * 1000**2
    assert settings.cors_origins == ("*",)


def test_extra_routes_pair_by_position_with_keys() -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": "sk-a, sk-b",
            "EXTRA_BASE_URL": "http://localhost:8080,https://api.groq.com/openai",
            "EXTRA_ROUTE_PREFIX": "/localai,groq/",
            "EXTRA_API_KEY": ",gsk-1|gsk-2",
        }
    )
    main, local, groq = settings.routes
    assert main.keys == ("sk-a", "sk-b")
    assert (local.prefix, local.keys) == ("/localai", ())
    assert (groq.prefix, groq.base_url, groq.keys) == (
        "/groq",
        "https://api.groq.com/openai",
        ("gsk-1", "gsk-2"),
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OPENAI_BASE_URL": "api.openai.com"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
        ({"EXTRA_BASE_URL": "http://a,http://b", "EXTRA_ROUTE_PREFIX": "/a"}, "EXTRA_ROUTE_PREFIX"),
        (
            {"EXTRA_BASE_URL": "http://a", "EXTRA_ROUTE_PREFIX": "/a", "EXTRA_API_KEY": "k,l"},
            "EXTRA_API_KEY",
        ),
        ({"EXTRA_BASE_URL": "http://a", "EXTRA_ROUTE_PREFIX": "/"}, "OPENAI_ROUTE_PREFIX"),
        (
            {"EXTRA_BASE_URL": "http://a", "EXTRA_ROUTE_PREFIX": "http://x:notaport"},
            "EXTRA_ROUTE_PREFIX",
        ),
        ({"TIMEOUT": "soon"}, "TIMEOUT"),
        ({"MAX_BODY_SIZE": "lots"}, "MAX_BODY_SIZE"),
        ({"ALLOW_OPEN_ACCESS": "maybe"}, "ALLOW_OPEN_ACCESS"),
        ({"PORT": "70000"}, "PORT"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("raw", "size"), [("100MB", 100_000_000), ("1GiB", 1024**3), ("512", 512), ("2kb", 2000)]
)
def test_sizes(raw: str, size: int) -> None:
    assert Settings.from_env({"MAX_BODY_SIZE": raw}).max_body_size == size


def test_longest_prefix_wins_at_segment_boundaries() -> None:
    table = RouteTable(
        [Route("/", "http://a"), Route("/v1/special", "http://b"), Route("/ai", "http://c")]
    )

    def match(path: str) -> Matched | None:
        return table.match(parse_target("GET", path.encode()))

    assert match("/v1/special/x") == (table.routes[0], "/x", "/x")
    assert match("/v1/special")[0].base_url == "http://b"  # type: ignore[index]
    assert match("/v1//special/")[0].base_url == "http://b"  # type: ignore[index]
    assert match("/v1/specialist")[0].base_url == "http://a"  # type: ignore[index]
    assert match("/air")[0].base_url == "http://a"  # type: ignore[index]
    assert match("/v1%2Fspecial/x")[0].base_url == "http://a"  # type: ignore[index]
    assert RouteTable([Route("/ai", "http://c")]).match(parse_target("GET", b"/v1")) is None


def test_open_access_is_refused_only_when_it_would_expose_keys() -> None:
    exposed = Settings.from_env({"OPENAI_API_KEY": "sk-1"})
    assert "FORWARD_KEY" in (exposed.open_access_problem() or "")
    assert "ALLOW_OPEN_ACCESS" in (exposed.open_access_problem() or "")
    assert (
        Settings.from_env({"OPENAI_API_KEY": "sk-1", "HOST": "127.0.0.1"}).open_access_problem()
        is None
    )
    assert (
        Settings.from_env({"OPENAI_API_KEY": "sk-1", "FORWARD_KEY": "f"}).open_access_problem()
        is None
    )
    assert (
        Settings.from_env(
            {"OPENAI_API_KEY": "sk-1", "ALLOW_OPEN_ACCESS": "true"}
        ).open_access_problem()
        is None
    )
    assert Settings.from_env({}).open_access_problem() is None
