"""How long `GET /metrics` takes while wrk drives the gateway at full speed.

    python benchmarks/scrape.py [--scrapes 40] [--workers 1] [--connections 32]

The gateway runs with METRICS=true in front of the fake upstream; wrk sends
non-streamed chat completions from 500 client keys (as benchmarks/run.py does)
while this script scrapes `/metrics` every 0.2 s on a connection of its own.
Reports p50, p99 and the slowest scrape, with the load's requests/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CHAT, HERE, KEYS, free_port, process, wait_up, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    py = sys.executable
    up_port, port = free_port(), free_port()
    upstream, url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{port}"
    env = {
        "OPENAI_BASE_URL": upstream,
        "OPENAI_API_KEY": "sk-bench",
        "FORWARD_KEY": ",".join(f"fk-bench-{i}" for i in range(KEYS)),
        "METRICS": "true",
        "ACCESS_LOG": "false",
    }
    command = [py, "-m", "ai_forward", "run", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(args.workers)]
    with (
        process([py, str(HERE / "fake_upstream.py"), str(up_port), "50"]) as fake,
        process(command, env) as gateway,
    ):
        wait_up(upstream, fake)
        wait_up(url + "/healthz", gateway)
        seconds = int(args.scrapes * 0.2) + 4
        load: dict[str, float] = {}

        def drive() -> None:
            load["rps"] = wrk(url, CHAT, seconds, args.connections)[0]

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(2)  # let the load reach full speed
        timings: list[float] = []
        with httpx.Client(timeout=10) as client:
            for _ in range(args.scrapes):
                started = time.perf_counter()
                response = client.get(url + "/metrics")
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                time.sleep(0.2)
        driver.join()
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    print(
        f"{len(timings)} scrapes under {load['rps']:.0f} req/s ({args.workers} worker(s)): "
        f"p50 {statistics.median(timings):.1f} ms, p99 {p99:.1f} ms, max {timings[-1]:.1f} ms; "
        f"{len(response.content)} bytes"
    )


if __name__ == "__main__":
    main()
