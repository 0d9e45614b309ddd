"""Compare direct upstream, a bare passthrough and `aifd run`, in one run, on this machine.

    python benchmarks/run.py [--seconds 5] [--rounds 3] [--connections 32]
                             [--variants aifd,aifd-metrics-off,aifd-limits,aifd-cache-hit]

Everything listens on 127.0.0.1; wrk (apt-get install wrk) generates the load. Rounds are
interleaved (A B C A B C ...) so drift on a shared machine hits every target alike; the
median round is reported, with ratios against the bare passthrough.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHAT = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'
STREAM = CHAT[:-1] + ',"stream":true}'
LEAN = "passthrough-builtin-client"
KEYS = 500  # clients, each with its own forward key, as a gateway in front of a team sees
# Per-client limits far above what a client sends here (so no 429), counted for every request.
LIMITS = {
    "REQ_RATE_LIMIT": "/v1/chat/completions=100000/minute",
    "TPM_LIMIT": "1000000000/minute",
}
CACHED = {"CACHE_ROUTES": "/v1/chat/completions", "DEFAULT_REQUEST_CACHING_VALUE": "true"}
VARIANTS: dict[str, dict[str, str]] = {
    # `aifd run` with metrics counted and served, whatever the default; the variants below
    # take the defaults and add what their names say.
    "aifd": {"METRICS": "true"},
    "aifd-limits": LIMITS,
    "aifd-limits-redis": {**LIMITS, "RATE_LIMIT_BACKEND": "redis://127.0.0.1:{redis}/0"},
    "aifd-limits-global": {**LIMITS, "GLOBAL_RATE_LIMIT": "100000000/minute"},
    "aifd-limits-global-swc": {
        **LIMITS,
        "GLOBAL_RATE_LIMIT": "100000000/minute",
        "RATE_LIMIT_STRATEGY": "sliding-window-counter",
    },
    "aifd-log": {"LOG_CHAT": "true"},
    "aifd-limits-log": {**LIMITS, "LOG_CHAT": "true"},
    "aifd-limits-redis-log": {
        **LIMITS,
        "RATE_LIMIT_BACKEND": "redis://127.0.0.1:{redis}/0",
        "LOG_CHAT": "true",
    },
    "aifd-no-access-log": {"ACCESS_LOG": "false"},
    # Compare `aifd` (METRICS=true) against this for what counting every request costs.
    "aifd-metrics-off": {"METRICS": "false"},
    # Every request after the first answered from the cache (one entry for all clients).
    "aifd-cache-hit": {**CACHED, "CACHE_SCOPE": "shared"},
    # Every request a miss: the key and the lookup are paid, but no entry fits in one byte (so
    # no copy of the answer is kept either), and nobody waits for an identical request in
    # flight. A miss that is stored costs a copy, a parse and the store besides.
    "aifd-cache-miss": {**CACHED, "CACHE_MAX_BYTES": "1", "CACHE_WAIT": "0"},
    # The dashboard installed (nobody has it open) and budgets priced: the forward keys'
    # requests pass its hook and the budget check untouched.
    "aifd-admin": {"ADMIN_TOKEN": "bench-admin-token-0123456789", "MODEL_PRICES": "gpt-4o*=2.5/10"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(
        args, env=full_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to compare work per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body: str, seconds: int, connections: int) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 latency (ms), and the number of requests made."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f"local body = '{body}'\n"
            "local i = 0\n"
            "request = function()\n"
            f"  i = (i + 1) % {KEYS}\n"
            "  return wrk.format('POST', nil, {['Content-Type'] = 'application/json',\n"
            "    ['Authorization'] = 'Bearer fk-bench-' .. i}, body)\n"
            "end\n"
        )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script.name,
            url + "/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, latency(out, "50%"), latency(out, "99%"), count


def redis_calls(port: int) -> dict[str, int]:
    """Commands clients sent to the benchmark's Redis since the last call (INFO
    commandstats; the scripts' own calls inside Redis are left out: no round trips)."""
    import redis

    client = redis.Redis(port=port)
    stats = client.info("commandstats")
    client.config_resetstat()
    client.close()
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    inside = {"time", "get", "pttl", "lindex", "rpop", "llen", "lpush", "pexpire", "incrby"}
    inside |= {"set", "hmget", "hset", "info", "config|resetstat"}
    return {name: n for name, n in calls.items() if name not in inside}


def latency(out: str, pct: str) -> float:
    match = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)\b", out)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variants", default="aifd")
    parser.add_argument(
        "--lean-yardstick",
        action="store_true",
        help="also run a passthrough on ai-forward's own HTTP client, and give ratios to it",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    py = sys.executable
    variants = args.variants.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="aifd-bench-"))
    up_port, pass_port, redis_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    targets: dict[str, str] = {"direct": upstream}
    pids: dict[str, int] = {}
    with contextmanager_stack() as stack:
        proc = stack(process([py, str(HERE / "fake_upstream.py"), str(up_port), "50"]))
        wait_up(upstream, proc)
        if any("redis" in v for v in variants):
            stack(
                process(
                    ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
                )
            )
            time.sleep(0.5)
        proc = stack(process([py, str(HERE / "passthrough.py"), str(pass_port), upstream]))
        targets["passthrough"] = f"http://127.0.0.1:{pass_port}"
        pids["passthrough"] = proc.pid
        wait_up(targets["passthrough"], proc)
        if args.lean_yardstick:
            lean_port = free_port()
            command = [py, str(HERE / "passthrough.py"), str(lean_port), upstream]
            proc = stack(process([*command, "--client", "builtin"]))
            targets[LEAN] = f"http://127.0.0.1:{lean_port}"
            pids[LEAN] = proc.pid
            wait_up(targets[LEAN], proc)
        for variant in variants:
            port = free_port()
            env = {
                "OPENAI_BASE_URL": upstream,
                "OPENAI_API_KEY": "sk-bench",
                "FORWARD_KEY": ",".join(f"fk-bench-{i}" for i in range(KEYS)),
                "LOG_DIR": str(workdir / variant),
            }
            env.update({k: v.format(redis=redis_port) for k, v in VARIANTS[variant].items()})
            proc = stack(
                process(
                    [py, "-m", "ai_forward", "run", "--host", "127.0.0.1", "--port", str(port)],
                    env,
                    cwd=workdir,
                )
            )
            targets[variant] = f"http://127.0.0.1:{port}"
            pids[variant] = proc.pid
            wait_up(targets[variant] + "/healthz", proc)
        for mode, body in (("non-stream", CHAT), ("stream (50 chunks)", STREAM)):
            results: dict[str, list[tuple[float, float, float, float]]] = {t: [] for t in targets}
            for url in targets.values():  # warm-up
                wrk(url, body, 1, args.connections)
            trips: dict[str, dict[str, int]] = {}
            made: dict[str, int] = {}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    cpu = cpu_seconds(pids[name]) if name in pids else 0.0
                    if "redis" in name:
                        redis_calls(redis_port)
                    rps, p50, p99, count = wrk(url, body, args.seconds, args.connections)
                    used = cpu_seconds(pids[name]) - cpu if name in pids else 0.0
                    results[name].append((rps, p50, p99, used / (rps * args.seconds) * 1e6))
                    if "redis" in name:
                        time.sleep(0.2)  # the last settlements
                        tally = trips.setdefault(name, {})
                        for command, n in redis_calls(redis_port).items():
                            tally[command] = tally.get(command, 0) + n
                        made[name] = made.get(name, 0) + count
            report(mode, results)
            for name, calls in trips.items():
                per = ", ".join(f"{c} {n / made[name]:.3f}" for c, n in sorted(calls.items()))
                print(f"Redis commands per request, {name}: {per} ({made[name]} requests)")


def report(mode: str, results: dict[str, list[tuple[float, float, float, float]]]) -> None:
    """Medians of the rounds; each ratio is the median of the rounds' own ratios (a round's
    targets ran side by side, so they share its noise)."""
    med = {
        name: tuple(statistics.median(r[i] for r in runs) for i in range(4))
        for name, runs in results.items()
    }

    def ratio(name: str, base: str, i: int) -> float:
        return statistics.median(
            a[i] / b[i] for a, b in zip(results[name], results[base], strict=True) if b[i]
        )

    lean = LEAN in results
    print(f"\n## {mode}")
    extra = " | req/s vs builtin-client passthrough" if lean else ""
    print(
        "| target | req/s | p50 ms | p99 ms | CPU us/req | req/s ratio | p50 ratio | CPU ratio"
        f"{extra} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if lean else ""))
    for name, (rps, p50, p99, cpu) in med.items():
        cpu_text = f"{cpu:.0f}" if cpu else "-"
        cpu_ratio = f"{ratio(name, 'passthrough', 3):.2f}" if cpu else "-"
        line = (
            f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {cpu_text} | "
            f"{ratio(name, 'passthrough', 0):.2f} | {ratio(name, 'passthrough', 1):.2f} | "
            f"{cpu_ratio} |"
        )
        if lean:
            line += f" {ratio(name, LEAN, 0):.2f} |"
        print(line)
    sys.stdout.flush()


@contextmanager
def contextmanager_stack() -> Iterator:  # type: ignore[type-arg]
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield stack.enter_context


if __name__ == "__main__":
    main()
