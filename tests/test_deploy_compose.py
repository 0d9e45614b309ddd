"""deploy/docker-compose.yml and render.yaml, parsed: the topology deploy.md describes."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ai_forward import Settings
from tests.deploy_doc import ROOT, known_settings

COMPOSE = ROOT / "deploy" / "docker-compose.yml"
INSTANCES = ("aifd-1", "aifd-2")


def seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", text)
    assert match, text
    return int(match.group(1))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_runs_redis_two_instances_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *INSTANCES, "nginx"}
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
        assert service["restart"] == "unless-stopped", name


def test_instances_share_one_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[name]["environment"] for name in INSTANCES]
    assert envs[0] == envs[1]
    env = envs[0]
    assert set(env) <= known_settings()
    backend, store = urlsplit(env["RATE_LIMIT_BACKEND"]), urlsplit(env["STORE_URL"])
    assert backend.scheme == store.scheme == "redis"
    assert backend.hostname == store.hostname == "redis" and "redis" in services
    assert env["WORKERS"] == "2"
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8000")  # nginx-compose.conf's port
    Settings.from_env(env)
    for name in INSTANCES:
        service = services[name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert seconds(service["stop_grace_period"]) > 30  # SHUTDOWN_GRACE
        assert "/healthz" in " ".join(service["healthcheck"]["test"])
        assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").is_file()
    volumes = [services[name]["volumes"] for name in INSTANCES]
    assert [v[0].split(":")[1] for v in volumes] == ["/data", "/data"]
    assert volumes[0] != volumes[1], "each instance writes its own chat logs"


def test_redis_keeps_users_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert redis["volumes"] == ["redis-data:/data"]


def test_nginx_balances_both_instances_and_is_the_trusted_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nginx = services["nginx"]
    mount = nginx["volumes"][0].split(":")
    assert mount[1] == "/etc/nginx/conf.d/default.conf"
    site = (COMPOSE.parent / mount[0]).read_text()
    assert re.findall(r"server ([\w-]+):8000;", site) == list(INSTANCES)
    assert {name: nginx["depends_on"][name]["condition"] for name in INSTANCES} == {
        "aifd-1": "service_healthy",
        "aifd-2": "service_healthy",
    }
    assert nginx["ports"] == ["8000:80"]
    address = nginx["networks"]["aifd"]["ipv4_address"]
    subnet = compose["networks"]["aifd"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    for name in INSTANCES:
        assert services[name]["environment"]["TRUSTED_PROXIES"] == address


@pytest.fixture(scope="module")
def render() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "render.yaml").read_text())
    return data


def test_render_web_service_builds_the_dockerfile(render: dict[str, Any]) -> None:
    (web,) = [s for s in render["services"] if s["type"] == "web"]
    assert web["runtime"] == "docker"
    assert (ROOT / web["dockerfilePath"]).resolve() == (ROOT / "Dockerfile")
    assert web["healthCheckPath"] == "/healthz"
    assert web["disk"]["mountPath"] == "/data"  # the image's VOLUME
    assert web["maxShutdownDelaySeconds"] > 30  # SHUTDOWN_GRACE


def test_render_secrets_are_asked_for_never_committed(render: dict[str, Any]) -> None:
    (web,) = [s for s in render["services"] if s["type"] == "web"]
    variables = {v["key"]: v for v in web["envVars"]}
    assert set(variables) <= known_settings()
    secrets = [k for k in variables if re.search(r"KEY|TOKEN", k)]
    assert {"OPENAI_API_KEY", "FORWARD_KEY", "ADMIN_TOKEN"} <= set(secrets)
    for key in secrets:
        assert variables[key] == {"key": key, "sync": False}, key


def test_render_key_value_is_wired_to_limits_and_users(render: dict[str, Any]) -> None:
    (web,) = [s for s in render["services"] if s["type"] == "web"]
    (store,) = [s for s in render["services"] if s["type"] == "keyvalue"]
    assert store["maxmemoryPolicy"] == "noeviction"
    assert store["ipAllowList"] == []  # internal connections only
    wired = {v["key"]: v["fromService"] for v in web["envVars"] if "fromService" in v}
    assert set(wired) == {"RATE_LIMIT_BACKEND", "STORE_URL"}
    for source in wired.values():
        assert source == {"type": "keyvalue", "name": store["name"], "property": "connectionString"}


def test_readme_deploy_section_comes_before_performance() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert headings[headings.index("Deploy") + 1] == "Performance"
    section = readme[readme.index("## Deploy") : readme.index("## Performance")]
    assert "(deploy.md)" in section
    assert "https://render.com/deploy?repo=" in section
    assert "deploy-to-render-button.svg" in section
