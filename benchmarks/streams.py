"""Many concurrent slow streams through one `aifd run` worker: memory and added lag.

    python benchmarks/streams.py [--streams 10000] [--events 60] [--interval 1]
                                 [--ramp 1000] [--no-direct]

A slow upstream (`slow_upstream.py`) sends each stream one event every INTERVAL seconds,
stamped with the time it was sent; this script holds all the streams open as the client
and measures, for every event, the time from the upstream's send to its arrival here.
It does so through the gateway (forward keys, the access log, one worker) and, unless
--no-direct, straight to the upstream: the difference is the lag the gateway adds. The
gateway's resident memory is sampled every second; its peak is reported.

Targets: every stream served to its end, peak RSS under 1 GB, added lag under 100 ms.
The open-file limit is raised here to the hard limit (children inherit it): 10,000
streams need about 20,000 descriptors in the gateway (one per client, one upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HERE, free_port, process, wait_up

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
SPARE_FILES = 200


@dataclass
class Tally:
    lags: list[float] = field(default_factory=list)
    done: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failed[why] = self.failed.get(why, 0) + 1


def raise_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, wanted), limit), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_stream(session: aiohttp.ClientSession, url: str, tally: Tally) -> None:
    try:
        async with session.post(url + "/v1/chat/completions", json=BODY) as response:
            if response.status != 200:
                tally.fail(f"status {response.status}")
                await response.read()
                return
            async for line in response.content:
                if line.startswith(b"data: {"):
                    arrived = time.time()
                    tally.lags.append(arrived - orjson.loads(line[6:])["sent"])
                elif line.startswith(b"data: [DONE]"):
                    tally.done += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(type(exc).__name__)


async def drive(url: str, streams: int, ramp: int, pid: int | None) -> tuple[Tally, float]:
    tally = Tally()
    peak = 0.0
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"authorization": "Bearer fk-bench-0"}
    ) as session:
        tasks: list[asyncio.Task[None]] = []
        for start in range(0, streams, max(ramp // 10, 1)):
            batch = min(max(ramp // 10, 1), streams - start)
            tasks += [asyncio.create_task(one_stream(session, url, tally)) for _ in range(batch)]
            await asyncio.sleep(0.1)
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
            if pid is not None:
                peak = max(peak, rss_mb(pid))
    return tally, peak


def summary(name: str, tally: Tally, streams: int, peak: float | None) -> dict[str, float]:
    lags = sorted(tally.lags) or [0.0]
    figures = {
        "p50": statistics.median(lags) * 1000,
        "p99": lags[int(len(lags) * 0.99) - 1 if len(lags) > 1 else 0] * 1000,
        "max": lags[-1] * 1000,
    }
    failed = ", ".join(f"{why}: {n}" for why, n in tally.failed.items()) or "none"
    rss = f"{peak:.0f} MB" if peak is not None else "-"
    print(
        f"| {name} | {tally.done}/{streams} | {failed} | {len(tally.lags)} | "
        f"{figures['p50']:.1f} | {figures['p99']:.1f} | {figures['max']:.1f} | {rss} |"
    )
    sys.stdout.flush()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--ramp", type=int, default=1000, help="new streams per second")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct baseline")
    args = parser.parse_args()
    files = raise_file_limit(2 * args.streams + SPARE_FILES)
    streams = args.streams
    if files < 2 * streams + SPARE_FILES:
        streams = (files - SPARE_FILES) // 2
        print(
            f"NOTE: the hard open-file limit is {files}: running {streams} streams, not "
            f"{args.streams} (raise `ulimit -Hn` for the full count)"
        )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    py = sys.executable
    up_port, port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    slow = [py, str(HERE / "slow_upstream.py"), str(up_port), str(args.events), str(args.interval)]
    env = {
        "OPENAI_BASE_URL": upstream,
        "OPENAI_API_KEY": "sk-bench",
        "FORWARD_KEY": "fk-bench-0",
        "UPSTREAM_POOL_SIZE": str(streams + 100),
    }
    gateway = [py, "-m", "ai_forward", "run", "--host", "127.0.0.1", "--port", str(port)]
    print(f"\n## {streams} streams of {args.events} events, one per {args.interval:g}s")
    print("| target | streams done | failures | events | lag p50 ms | p99 ms | max ms | peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    with process(slow) as upstream_proc:
        wait_up(upstream, upstream_proc)
        direct = None
        if not args.no_direct:
            tally, _ = asyncio.run(drive(upstream, streams, args.ramp, None))
            direct = summary("direct", tally, streams, None)
        with process(gateway, env, cwd=Path(os.getcwd())) as proc:
            wait_up(f"http://127.0.0.1:{port}/healthz", proc)
            base = rss_mb(proc.pid)
            tally, peak = asyncio.run(
                drive(f"http://127.0.0.1:{port}", streams, args.ramp, proc.pid)
            )
            through = summary("aifd", tally, streams, peak)
    print(
        f"\ngateway RSS: {base:.0f} MB idle, {peak:.0f} MB peak "
        f"({(peak - base) * 1024 / max(streams, 1):.1f} KB per stream)"
    )
    if direct is not None:
        added = {k: through[k] - direct[k] for k in through}
        print(
            f"added lag (aifd - direct): p50 {added['p50']:.1f} ms, p99 {added['p99']:.1f} ms, "
            f"max {added['max']:.1f} ms"
        )
    complete = tally.done == streams and not tally.failed
    print(
        f"targets: all streams served {'yes' if complete else 'NO'}; RSS < 1 GB "
        f"{'yes' if peak < 1024 else 'NO'}"
    )


if __name__ == "__main__":
    main()
