"""Offline installs for the packaging tests: this checkout's wheel and a wheelhouse.

A fresh virtualenv sees nothing of the test environment, so pip needs every dependency as
a wheel. The wheelhouse is made from the distributions the running interpreter already has
installed (repacked as wheels), so no test touches an index, and the result is the same
whether the tests run from a virtualenv, a system Python, pyenv or a container.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import sys_tags

# What `pip install .` needs to build the package (pyproject's build-system).
BUILD_REQUIRES = ("setuptools", "wheel")
# Left out of a repacked wheel: pip writes these again when it installs the wheel.
_INSTALLER_FILES = ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json")


def offline_pip_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """`base` (default: this environment) for a nested pip and Python: no pip configuration
    files, no index, no PIP_* settings, no PYTHONPATH, no outer virtualenv."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def build_wheel(source: Path, into: Path) -> Path:
    """This checkout's wheel, built by the running interpreter without any download."""
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*argv, "-w", str(into), str(source)],
        env=offline_pip_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = into.glob("aifd-*.whl")
    return wheel


def runtime_requirements(pyproject: Path) -> list[str]:
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def closure(requirements: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that `requirements` need, transitively, by name."""
    found: dict[str, metadata.Distribution] = {}
    followed: set[tuple[str, str]] = set()
    # (requirement, the extra of the distribution that asked for it)
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, asked_by_extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": asked_by_extra}):
            continue
        name = canonical(requirement.name)
        dist = found.setdefault(name, metadata.distribution(requirement.name))
        for extra in ("", *requirement.extras):
            if (name, extra) not in followed:
                followed.add((name, extra))
                pending += [(Requirement(text), extra) for text in dist.requires or ()]
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def repack(dist: metadata.Distribution, into: Path) -> Path:
    """An installed distribution as a wheel again: its files, its metadata, a new RECORD."""
    files = [
        f
        for f in dist.files or ()
        if f.parts[0] != ".."  # scripts in bin/: pip writes them from entry_points.txt
        and "__pycache__" not in f.parts
        and not (f.parts[0].endswith(".dist-info") and f.name in _INSTALLER_FILES)
    ]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    path = into / f"{info.removesuffix('.dist-info')}-{wheel_tag(dist)}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name in files:
            data = Path(str(dist.locate_file(name))).read_bytes()
            wheel.writestr(str(name.as_posix()), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name.as_posix()},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def wheel_tag(dist: metadata.Distribution) -> str:
    """The tag the wheel was installed from (its WHEEL file), else this interpreter's."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    if not tags:
        pure = all(not str(f).endswith((".so", ".pyd")) for f in dist.files or ())
        tags = ["py3-none-any"] if pure else [str(next(iter(sys_tags())))]
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


def make_wheelhouse(checkout: Path, into: Path) -> Path:
    """`into`, holding this checkout's wheel and every wheel it and its build need."""
    into.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(checkout, into)
    needed = [*runtime_requirements(checkout / "pyproject.toml"), *BUILD_REQUIRES]
    for dist in closure(needed).values():
        repack(dist, into)
    return wheel


def fresh_venv(path: Path) -> Path:
    """A virtualenv that sees only what is installed into it; returns its bin directory."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(path)], env=offline_pip_env(), check=True, timeout=120
    )
    return path / "bin"
