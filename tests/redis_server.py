"""A real redis-server on a free port, for tests of shared (multi-worker) state."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.fakes import free_port


class RedisServer:
    """A private redis-server process; `url` is its redis:// address."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra = extra  # more redis-server options, e.g. --cluster-enabled yes
        self._dir = tempfile.TemporaryDirectory()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install -y redis-server")
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("redis-server did not start within 10 s")

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)

    def pause(self) -> None:
        """Stop the server process, keeping its port and directory: `start` brings it back."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
        self._dir.cleanup()


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """A redis:// URL of an empty database on a real redis-server."""
    redis_session.flush()
    return redis_session.url


class RedisCluster:
    """Three local redis-server nodes (`--cluster-enabled yes`) joined into one cluster;
    `url` is its redis+cluster:// address."""

    def __init__(self) -> None:
        # The bus port is the port + 10000 unless named: a free one, named.
        self.nodes = [
            RedisServer("--cluster-enabled", "yes", "--cluster-port", str(free_port()))
            for _ in range(3)
        ]
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        self.url = f"redis+cluster://{hosts}"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run(
                ["redis-cli", "-p", str(self.nodes[0].port), "cluster", "info"],
                capture_output=True,
                timeout=5,
            ).stdout
            if b"cluster_state:ok" in info:
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail("the redis cluster did not come up within 20 s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A redis-server and one sentinel watching it as `main`; `url` is its
    redis+sentinel:// address."""

    def __init__(self) -> None:
        self.main = RedisServer()
        self._dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.url = f"redis+sentinel://127.0.0.1:{self.port}/main"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisSentinel:
        self.main.start()
        config = f"{self._dir.name}/sentinel.conf"
        with open(config, "w") as handle:
            handle.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self._dir.name}\n"
                f"sentinel monitor main 127.0.0.1 {self.main.port} 1\n"
            )
        binary = shutil.which("redis-server")
        assert binary is not None
        self._proc = subprocess.Popen(
            [binary, config, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = subprocess.run(
                ["redis-cli", "-p", str(self.port), "sentinel", "get-master-addr-by-name", "main"],
                capture_output=True,
                timeout=5,
            ).stdout
            if str(self.main.port).encode() in answer:
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail("redis sentinel did not start within 10 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
        self.main.stop()
        self._dir.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    sentinel = RedisSentinel().start()
    yield sentinel
    sentinel.stop()
