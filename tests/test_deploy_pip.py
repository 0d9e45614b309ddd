"""deploy.md, "pip and systemd" and "Upgrading": the commands, run in temporary paths.

The package is installed the way deploy.md says into a fresh virtualenv, from a copy of
exactly what the Docker build copies; and its wheel into another. Offline: pip gets no
index, only a wheelhouse repacked from this environment's installed distributions
(tests/wheelhouse.py), so the result does not depend on how Python was installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.deploy_doc import ROOT, command, dotenv_blocks, localize
from tests.fakes import FakeUpstream, free_port
from tests.processes import clean_env, serving, wait_healthy
from tests.wheelhouse import fresh_venv, make_wheelhouse, offline_pip_env


@dataclass(frozen=True)
class Installed:
    checkout: Path
    venv: Path
    paths: dict[str, str]
    wheelhouse: Path

    @property
    def offline(self) -> str:
        """What pip gets besides a deploy.md command: the wheelhouse (no index: see env)."""
        return f" --find-links {self.wheelhouse}"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def run(self, text: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """A deploy.md command, localized, with the virtualenv first on PATH."""
        argv = shlex.split(localize(text, self.paths))
        env = offline_pip_env(clean_env(PATH=f"{self.venv / 'bin'}:{os.environ['PATH']}"))
        return subprocess.run(
            argv, cwd=cwd or self.checkout, env=env, capture_output=True, text=True, timeout=120
        )


@dataclass(frozen=True)
class Built:
    checkout: Path
    wheel: Path
    wheelhouse: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A copy of what the Dockerfile copies into its build stage, plus the files deploy.md
    installs; its wheel, in a wheelhouse with everything it needs."""
    checkout = tmp_path_factory.mktemp("src") / "ai-forward"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md", ".env.example"):
        shutil.copy(ROOT / name, checkout / name)
    for folder in ("ai_forward", "deploy"):
        shutil.copytree(ROOT / folder, checkout / folder, ignore=shutil.ignore_patterns("__py*"))
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    return Built(checkout, make_wheelhouse(checkout, wheelhouse), wheelhouse)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, built: Built) -> Installed:
    base = tmp_path_factory.mktemp("host")
    checkout = built.checkout
    paths = {
        "/opt/aifd": str(base / "opt/aifd"),
        "/etc/aifd": str(base / "etc/aifd"),
        "/etc/systemd/system": str(base / "etc/systemd/system"),
        "/var/lib/aifd": str(base / "var/lib/aifd"),
    }
    # `python3 -m venv`, by the interpreter running the tests.
    venv = shlex.split(localize(command("sudo python3 -m venv /opt/aifd"), paths))
    fresh_venv(Path(venv[-1]))
    result = Installed(checkout, Path(paths["/opt/aifd"]), paths, built.wheelhouse)
    pip = result.run(command("sudo /opt/aifd/bin/pip install .") + result.offline)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return result


@pytest.fixture(scope="module")
def system_files(installed: Installed) -> Path:
    """The settings file and the unit, installed as deploy.md says; returns the unit."""
    Path(installed.paths["/etc/systemd/system"]).mkdir(parents=True)
    for text in (
        "sudo install -d -m 750 -o root -g aifd /etc/aifd",
        "sudo install -m 640 -o root -g aifd .env.example /etc/aifd/aifd.env",
        "sudo cp deploy/aifd.service /etc/systemd/system/aifd.service",
    ):
        done = installed.run(command(text))
        assert done.returncode == 0, done.stderr
    unit = Path(installed.paths["/etc/systemd/system"]) / "aifd.service"
    # The copied unit names the real host paths; point it at this test's paths.
    unit.write_text(localize(unit.read_text(), installed.paths))
    Path(installed.paths["/var/lib/aifd"]).mkdir(parents=True)  # systemd's StateDirectory
    return unit


def unit_values(unit: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in unit.read_text().splitlines()
        if line.startswith(key + "=")
    ]


def test_installed_package_runs_from_the_virtualenv(installed: Installed) -> None:
    code = "import ai_forward; print(ai_forward.__file__)"
    # Outside the checkout: `python -c` would import the sources in the working directory.
    where = installed.run(f"{installed.bin('python')} -c '{code}'", cwd=installed.venv)
    assert where.stdout.strip().startswith(str(installed.venv)), where.stdout + where.stderr
    assert installed.bin("aifd").is_file()


def test_installed_aifd_help(installed: Installed) -> None:
    done = installed.run(command("/opt/aifd/bin/aifd run --help"))
    assert done.returncode == 0, done.stderr
    assert "--workers" in done.stdout and "OPENAI_API_KEY" in done.stdout


def test_settings_file_is_private_to_the_service(installed: Installed, system_files: Path) -> None:
    settings = Path(installed.paths["/etc/aifd"]) / "aifd.env"
    assert settings.read_text() == (ROOT / ".env.example").read_text()
    assert settings.stat().st_mode & 0o777 == 0o640
    assert Path(installed.paths["/etc/aifd"]).stat().st_mode & 0o777 == 0o750


def test_systemd_unit_verifies(installed: Installed, system_files: Path) -> None:
    exec_start = unit_values(system_files, "ExecStart")
    settings = Path(installed.paths["/etc/aifd"]) / "aifd.env"
    assert exec_start == [f"{installed.bin('aifd')} run --env-file {settings}"]
    assert unit_values(system_files, "User") == ["aifd"]
    assert unit_values(system_files, "WorkingDirectory") == [installed.paths["/var/lib/aifd"]]
    assert unit_values(system_files, "StateDirectory") == ["aifd"]
    assert int(unit_values(system_files, "TimeoutStopSec")[0]) > 30  # SHUTDOWN_GRACE
    if shutil.which("systemd-analyze") is None:
        # No systemd here: the unit is at least well formed and its command exists.
        assert system_files.read_text().count("[Service]") == 1
        assert Path(exec_start[0].split()[0]).is_file()
        return
    done = installed.run(command("sudo systemd-analyze verify /etc/systemd/system/aifd.service"))
    # verify exits 0 on ignored lines too: anything it prints is a problem.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    broken = system_files.with_name("broken.service")
    broken.write_text(system_files.read_text().replace("KillMode=mixed", "KillMode=gently"))
    done = installed.run(f"systemd-analyze verify {broken}")
    assert "broken.service:" in done.stderr and "gently" in done.stderr


def test_unit_command_serves_from_the_state_directory(
    installed: Installed, system_files: Path, upstream: FakeUpstream
) -> None:
    """ExecStart as systemd runs it: in WorkingDirectory, with the installed .env.example."""
    port = free_port()
    # The process environment wins over --env-file: only the address and upstream change.
    env = clean_env(HOST="127.0.0.1", PORT=str(port), OPENAI_BASE_URL=upstream.url)
    argv = shlex.split(unit_values(system_files, "ExecStart")[0])
    state = Path(unit_values(system_files, "WorkingDirectory")[0])
    with serving(argv, env, state) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        curl = command("curl -fsS http://127.0.0.1:8000/healthz").replace("8000", str(port))
        if shutil.which("curl"):
            done = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=10)
            assert done.returncode == 0 and '"status":"ok"' in done.stdout
        else:
            assert httpx.get(curl.split()[-1]).json()["status"] == "ok"
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="fk-change-me")
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "Hello!"
    assert upstream.last.headers["authorization"] == "Bearer sk-xxx1"


def test_installed_aifd_runs_two_workers(
    installed: Installed, tmp_path: Path, upstream: FakeUpstream
) -> None:
    port = free_port()
    env = clean_env(
        HOST="127.0.0.1",
        PORT=str(port),
        OPENAI_BASE_URL=upstream.url,
        PATH=f"{installed.venv / 'bin'}:{clean_env().get('PATH', '')}",
    )
    argv = shlex.split(command("aifd run --workers 2"))
    argv[0] = str(installed.bin("aifd"))
    with serving(argv, env, tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        with httpx.Client(base_url=url) as client:
            statuses = {client.get("/v1/models").status_code for _ in range(20)}
    assert statuses == {200}
    assert len(upstream.requests) == 20


def test_upgrade_commands(installed: Installed, tmp_path: Path) -> None:
    """Upgrading from openai-forward: its .env, in place, keeps working."""
    old_env = next(block for block in dotenv_blocks() if "LOG_CHAT" in block)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in old_env.items()))
    for text in ("pip uninstall -y openai-forward", "pip install ."):
        done = installed.run(command(text) + (installed.offline if "install ." in text else ""))
        assert done.returncode == 0, done.stdout + done.stderr
    copied = installed.run(command("cp .env.example .env"))
    assert copied.returncode == 0 and (installed.checkout / ".env").is_file()
    port = free_port()
    argv = shlex.split(command("aifd run --port 8000").replace("8000", str(port)))
    argv[0] = str(installed.bin("aifd"))
    # On loopback: the example's FORWARD_KEY is a documented placeholder, refused in public.
    with serving(argv, clean_env(HOST="127.0.0.1"), tmp_path) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    assert proc.stdout is not None
    log = proc.stdout.read()
    assert "/ -> https://api.openai.com" in log and "/localai -> http://localhost:8080" in log
    assert "sk-xxx1" not in log


def test_wheel_installs_into_a_fresh_venv_and_serves(
    built: Built, tmp_path: Path, upstream: FakeUpstream
) -> None:
    """The wheel CI builds, alone in a new virtualenv: `aifd --help`, then `aifd run` serves."""
    bin_dir = fresh_venv(tmp_path / "venv")
    env = offline_pip_env(clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}"))

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    pip = run(bin_dir / "pip", "install", "--find-links", built.wheelhouse, built.wheel)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert built.wheel.name.startswith("aifd-")
    code = (
        "import ai_forward, importlib.metadata as m; print(ai_forward.__file__, m.version('aifd'))"
    )
    where = run(bin_dir / "python", "-c", code)
    assert where.stdout.split() == [
        str(next((tmp_path / "venv/lib").glob("python*/site-packages/ai_forward/__init__.py"))),
        built.wheel.name.split("-")[1],
    ], where.stderr
    helped = run(bin_dir / "aifd", "--help")
    assert helped.returncode == 0 and "run" in helped.stdout and "users" in helped.stdout

    port = free_port()
    settings = dict(OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real-1", FORWARD_KEY="fk-1")
    serve_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), **settings}
    with serving([str(bin_dir / "aifd"), "run"], serve_env, tmp_path) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="fk-1")
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "Hello!"
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"
