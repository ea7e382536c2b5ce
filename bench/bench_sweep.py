"""Track A sweep speed against the simulator: sweep time vs the physical floor, limiter
efficiency, zero EGW00201, and Observer's memory after a sweep.

The simulator runs as a separate process (``observer sim``) so that the RSS
printed is Observer's own. Defaults are the acceptance case: 2,500 symbols at
20/s, whose floor is 2,500 / 20 = 125 s. A quick run:

    .venv/bin/python bench/bench_sweep.py --symbols 500 --rate 200
    .venv/bin/python bench/bench_sweep.py --latency-ms 200    # a slow network, same rate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from metrics.registry import Metrics, new_registry
from observer.config import GapSettings, StorageSettings, TrackASettings, TrackBSettings
from observer.credentials import demo_credentials
from observer.kis.client import KisClient, send_time_tracing
from observer.limiter import RateLimiter
from observer.runtime import track_a_concurrency
from observer.storage import Storage
from observer.track_a import MarketHours, TrackA
from observer.triggers import TriggerDetector
from observer.universe import Universe, fetch_share_codes


def rss_mib() -> float:
    """Resident memory now (VmRSS), MiB; peak RSS where /proc is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.asynccontextmanager
async def simulator(symbols: int, rate: float) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "observer", "sim", "--listen", "127.0.0.1:0"),
        *("--ws-listen", "127.0.0.1:0", "--symbols", str(symbols), "--rate-limit", str(rate)),
        "--always-open",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        key, _, rest_url = line.strip().partition(" ")
        if key != "rest_url":
            raise SystemExit(f"observer sim did not start: {line!r}")
        yield rest_url
    finally:
        process.terminate()
        await process.wait()


async def sim_json(http: aiohttp.ClientSession, url: str, body: Any = None) -> Any:
    if body is None:
        async with http.get(url) as response:
            return await response.json()
    async with http.post(url, json=body) as response:
        return await response.json(content_type=None)


async def bench(args: argparse.Namespace) -> int:
    metrics = Metrics(new_registry(), version="bench")
    async with (
        simulator(args.symbols, args.rate) as rest_url,
        aiohttp.ClientSession(trace_configs=[send_time_tracing()]) as http,
        Storage(
            Path(tempfile.mkdtemp()) / "bench.sqlite", StorageSettings(), metrics=metrics
        ) as db,
    ):
        limiter = RateLimiter(
            args.rate,
            metrics=metrics,
            safety_seconds=args.safety_ms / 1000,
            backoff_seconds=args.backoff_seconds,
        )
        client = KisClient(
            http, rest_url, demo_credentials("bench"), limiter=limiter, metrics=metrics
        )
        universe = Universe(metrics)
        universe.replace(await fetch_share_codes(client.master_file))
        await client.tokens.get()
        if args.latency_ms:
            fault = {"kind": "latency", "ms": args.latency_ms, "seconds": 86400}
            await sim_json(http, rest_url + "/sim/faults", fault)
        track_a = TrackA(
            client=client,
            universe=universe,
            storage=db,
            market=MarketHours(metrics, forced_open=True),
            settings=TrackASettings(),
            gaps=GapSettings(),
            detector=TriggerDetector(TrackBSettings()),
            metrics=metrics,
            concurrency=track_a_concurrency(args.rate),
            in_flight=limiter.calls_in_flight_needed,
        )
        results = []
        for _ in range(args.sweeps):
            before, started = limiter.granted, time.monotonic()
            result = await track_a.sweep()
            # Grants after the first, over the time from the first grant (at the start) to the last.
            granted_rate = (limiter.granted - before - 1) / (limiter.last_grant_at - started)
            results.append((result, granted_rate))
        await db.flush()
        memory = rss_mib()
        final_margin_ms = limiter.schedule.safety * 1000
        collection = (
            metrics.registry.get_sample_value("observer_track_a_collection_duration_seconds_sum")
            or 0.0
        )
        collected = (
            metrics.registry.get_sample_value("observer_track_a_collection_duration_seconds_count")
            or 1.0
        )
        stats = await sim_json(http, rest_url + "/sim/stats")

    floor = len(universe) / args.rate
    print(f"sweep of {len(universe)} symbols at {args.rate:g}/s (latency +{args.latency_ms} ms)")
    for index, (result, achieved) in enumerate(results, start=1):
        print(
            f"  sweep {index}: {result.duration_seconds:.2f} s vs floor {floor:.2f} s "
            f"({floor / result.duration_seconds * 100:.2f} % of the floor), "
            f"collected {result.collected}/{result.symbols}, failed {result.failed}"
        )
        print(
            f"  limiter efficiency: {achieved:.3f}/s granted of {args.rate:g}/s configured "
            f"= {achieved / args.rate * 100:.2f} % (first to last grant of the sweep)"
        )
    print(
        f"  EGW00201 answers from the simulator: {stats['rejections']['EGW00201']} "
        f"(safety margin {args.safety_ms:g} ms at start, {final_margin_ms:g} ms at the end; "
        f"back-off {args.backoff_seconds:g} s)"
    )
    print(
        f"  collection time per snapshot, limiter wait included: "
        f"mean {collection / collected * 1000:.0f} ms"
    )
    print(f"  Observer RSS after the sweeps: {memory:.1f} MiB")
    return 1 if stats["rejections"]["EGW00201"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2500, help="universe size (default 2500)")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second (default 20)")
    parser.add_argument("--sweeps", type=int, default=1, help="sweeps to run (default 1)")
    parser.add_argument("--latency-ms", type=int, default=0, help="simulator latency to add")
    parser.add_argument("--safety-ms", type=float, default=2.0, help="limiter margin (default 2)")
    parser.add_argument(
        "--backoff-seconds", type=float, default=1.0, help="pause after EGW00201 (default 1)"
    )
    sys.setswitchinterval(0.001)  # as observer run sets it
    started = time.monotonic()
    code = asyncio.run(bench(parser.parse_args()))
    print(f"  wall time {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
