"""deploy/nginx.conf and deploy/nginx-compose.conf: valid, equal where it matters, and a
real nginx in front of a real gateway relays a stream event by event."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from aiohttp import web

from ai_forward import Settings
from tests.deploy_doc import ROOT, command, localize, require
from tests.fakes import FakeUpstream, Handler, ProxyServer, Recorded, chunk, free_port, sse

SITE = ROOT / "deploy" / "nginx.conf"
COMPOSE_SITE = ROOT / "deploy" / "nginx-compose.conf"
INSTALL = "apt-get install -y nginx"


class Nginx:
    """nginx under a temporary prefix: the site files go in its conf.d, as on a host."""

    def __init__(self, prefix: Path) -> None:
        self.binary = require("nginx", INSTALL)
        self.prefix = prefix
        self.conf_d = prefix / "conf.d"
        self.conf_d.mkdir(parents=True, exist_ok=True)
        temp = prefix / "temp"
        temp.mkdir(exist_ok=True)
        temp.chmod(0o777)  # nginx workers may run as nobody
        paths = "\n".join(
            f"    {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.main = prefix / "nginx.conf"
        self.main.write_text(
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            f"http {{\n{paths}\n    access_log off;\n    include {self.conf_d}/*.conf;\n}}\n"
        )

    def argv(self, *extra: str, directives: str = "") -> list[str]:
        pid = f"pid {self.prefix / 'nginx.pid'};"
        return [self.binary, "-p", f"{self.prefix}/", "-c", str(self.main), "-e", "stderr",
                "-g", pid + directives, *extra]  # fmt: skip

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv("-t"), capture_output=True, text=True, timeout=30)

    @contextmanager
    def running(self) -> Iterator[None]:
        proc = subprocess.Popen(
            self.argv(directives="daemon off; master_process on;"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def site_for(text: str, listen: int, gateways: list[str]) -> str:
    """The site with its listen port and upstream servers moved to this test's ports."""
    text = re.sub(r"listen \d+;", f"listen 127.0.0.1:{listen};", text)
    servers = "".join(f"    server {address};\n" for address in gateways)
    return re.sub(r"(upstream aifd \{\n)(?:.*\n)*?(?=    #)", rf"\g<1>{servers}", text, count=1)


def location(text: str) -> str:
    block = text[text.index("    location / {") :]
    return re.sub(r"^\s*#.*\n", "", block[: block.index("\n    }\n")], flags=re.MULTILINE)


def directive(text: str, name: str) -> str:
    match = re.search(rf"^\s*{name} ([^;]+);", text, re.MULTILINE)
    assert match, f"{name} is missing"
    return match.group(1)


def test_nginx_configs_pass_nginx_t(tmp_path: Path) -> None:
    host = Nginx(tmp_path / "host")
    paths = {"/etc/nginx/conf.d": str(host.conf_d)}
    copy = localize(command("sudo cp deploy/nginx.conf /etc/nginx/conf.d/aifd.conf"), paths)
    subprocess.run(shlex.split(copy), cwd=ROOT, check=True)
    assert command("sudo nginx -t").removeprefix("sudo ").split() == ["nginx", "-t"]
    checked = host.check()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr

    # The compose site names its instances by service name; only nginx in the compose
    # network resolves them, so here they become loopback addresses.
    compose = Nginx(tmp_path / "compose")
    text = COMPOSE_SITE.read_text().replace("aifd-1:8000", "127.0.0.1:18001")
    (compose.conf_d / "default.conf").write_text(text.replace("aifd-2:8000", "127.0.0.1:18002"))
    checked = compose.check()
    assert checked.returncode == 0, checked.stderr


def test_nginx_t_fails_on_a_broken_site(tmp_path: Path) -> None:
    nginx = Nginx(tmp_path)
    (nginx.conf_d / "aifd.conf").write_text(SITE.read_text().replace("proxy_buffering off", "x"))
    checked = nginx.check()
    assert checked.returncode != 0 and "unknown directive" in checked.stderr


def test_both_sites_proxy_the_same_way() -> None:
    host, compose = SITE.read_text(), COMPOSE_SITE.read_text()
    assert location(host) == location(compose)
    assert directive(host, "client_max_body_size") == directive(compose, "client_max_body_size")
    assert re.findall(r"server (aifd-\d):8000;", compose) == ["aifd-1", "aifd-2"]


def test_site_settings_fit_the_gateway() -> None:
    text = SITE.read_text()
    assert directive(text, "proxy_buffering") == "off"
    assert directive(text, "proxy_request_buffering") == "off"
    assert directive(text, "proxy_http_version") == "1.1"
    size = directive(text, "client_max_body_size")
    assert size.endswith("m") and int(size[:-1]) * 1024**2 >= Settings().max_body_size
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        # Above the gateway's FIRST_BYTE_TIMEOUT default (600 s): the gateway answers first.
        assert int(directive(text, name).removesuffix("s")) > 600
    assert directive(text, "proxy_set_header X-Forwarded-For") == "$remote_addr"


def held_stream(released: threading.Event, waited: list[bool]) -> Handler:
    """A stream whose first event is sent at once and the rest only once the client saw it."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(chunk(role="assistant", content=""), chunk("Hel"), chunk("lo!"))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(events[0])
        await asyncio.to_thread(released.wait, 5)
        waited.append(released.is_set())
        for event in events[1:]:
            await response.write(event)
        await response.write_eof()
        return response

    return handler


@contextmanager
def behind_nginx(tmp_path: Path, gateway: ProxyServer, site: str = "") -> Iterator[str]:
    nginx = Nginx(tmp_path)
    port = free_port()
    text = site or SITE.read_text()
    (nginx.conf_d / "aifd.conf").write_text(site_for(text, port, [f"127.0.0.1:{gateway.port}"]))
    with nginx.running():
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield url


def first_event_arrives_before_the_rest(
    tmp_path: Path, upstream: FakeUpstream, gateway: ProxyServer, site: str = ""
) -> bool:
    released, waited = threading.Event(), []
    upstream.handler = held_stream(released, waited)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with (
        behind_nginx(tmp_path, gateway, site) as url,
        httpx.stream(
            "POST", url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer fk"}
        ) as reply,
    ):
        assert reply.status_code == 200
        lines = []
        for line in reply.iter_lines():
            if line.startswith("data: ") and not released.is_set():
                released.set()
            lines.append(line)
    assert "data: [DONE]" in lines
    return waited == [True]


def test_stream_through_nginx_arrives_event_by_event(
    tmp_path: Path, upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-1", FORWARD_KEY="fk")
    assert first_event_arrives_before_the_rest(tmp_path, upstream, gateway)
    assert upstream.last.headers["authorization"] == "Bearer sk-1"


def test_large_upload_passes_nginx_and_client_address_reaches_gateway(
    tmp_path: Path, upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(OPENAI_BASE_URL=upstream.url)
    body = b"x" * (5 * 1024**2)  # above nginx's default 1 MB
    with behind_nginx(tmp_path, gateway) as url:
        reply = httpx.post(
            url + "/v1/files", content=body, headers={"x-forwarded-for": "6.6.6.6"}, timeout=30
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["size"] == len(body)
    # nginx replaced the client's own X-Forwarded-For with the address it saw.
    forwarded = upstream.last.headers["x-forwarded-for"]
    assert "6.6.6.6" not in forwarded and forwarded.split(",")[0].strip() == "127.0.0.1"
