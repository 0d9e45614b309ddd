"""How throughput grows from one worker to two: the bare passthrough against `aifd run`
with every feature on (per-client request and token limits in Redis, the chat log, the
access log), on the same machine, in interleaved rounds.

    python benchmarks/scaling.py [--seconds 5] [--rounds 3] [--connections 64]

Prints requests/s of each target with 1 and 2 workers (medians of the rounds) and the
two-worker gain of each; the gateway should gain as much as the passthrough does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CHAT, HERE, KEYS, LIMITS, STREAM, free_port, process, wait_up, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    py = sys.executable
    workdir = Path(tempfile.mkdtemp(prefix="aifd-scaling-"))
    up_port, redis_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    targets: dict[str, str] = {}
    with ExitStack() as stack:
        proc = stack.enter_context(process([py, str(HERE / "fake_upstream.py"), str(up_port)]))
        wait_up(upstream, proc)
        redis = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
        stack.enter_context(process(redis))
        time.sleep(0.5)
        for workers in (1, 2):
            port = free_port()
            bare = [py, str(HERE / "passthrough.py"), str(port), upstream, str(workers)]
            proc = stack.enter_context(process(bare))
            targets[f"passthrough x{workers}"] = f"http://127.0.0.1:{port}"
            wait_up(targets[f"passthrough x{workers}"], proc)
            port = free_port()
            env = {
                "OPENAI_BASE_URL": upstream,
                "OPENAI_API_KEY": "sk-bench",
                "FORWARD_KEY": ",".join(f"fk-bench-{i}" for i in range(KEYS)),
                "RATE_LIMIT_BACKEND": f"redis://127.0.0.1:{redis_port}/0",
                "LOG_CHAT": "true",
                "LOG_DIR": str(workdir / f"w{workers}"),
                **LIMITS,
            }
            command = [py, "-m", "ai_forward", "run", "--host", "127.0.0.1", "--port", str(port)]
            proc = stack.enter_context(process([*command, "--workers", str(workers)], env))
            targets[f"aifd x{workers}"] = f"http://127.0.0.1:{port}"
            wait_up(targets[f"aifd x{workers}"] + "/healthz", proc)
        for mode, body in (("non-stream", CHAT), ("stream (50 chunks)", STREAM)):
            rates: dict[str, list[float]] = {name: [] for name in targets}
            for url in targets.values():
                wrk(url, body, 1, args.connections)  # warm-up
            for _ in range(args.rounds):
                for name, url in targets.items():
                    rates[name].append(wrk(url, body, args.seconds, args.connections)[0])
            median = {name: statistics.median(r) for name, r in rates.items()}
            print(f"\n## {mode}: requests/s, median of {args.rounds} rounds")
            print("| target | 1 worker | 2 workers | gain |")
            print("|---|---:|---:|---:|")
            for target in ("passthrough", "aifd"):
                one, two = median[f"{target} x1"], median[f"{target} x2"]
                print(f"| {target} | {one:.0f} | {two:.0f} | {two / one:.2f}x |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
