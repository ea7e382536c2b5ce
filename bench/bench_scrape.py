"""How long a /metrics scrape holds the event loop, and how many bytes it sends.

Populates every catalog metric (all label combinations, 41 slot series), serves
it on loopback and scrapes it repeatedly while a probe task measures how late
the loop runs a 1 ms timer: the lateness is the time something held the loop.

    .venv/bin/python bench/bench_scrape.py [--scrapes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import time

import aiohttp

from exporter.server import ExporterServer
from metrics import catalog
from metrics.catalog import Kind
from metrics.registry import Metrics, new_registry

PROBE_INTERVAL_S = 0.001


def populate_everything(metrics: Metrics) -> None:
    for spec in catalog.CATALOG:
        if spec.kind is Kind.GAUGE and not spec.labels:
            metrics.gauge(spec).set(1)
        elif spec.kind is Kind.COUNTER and not spec.labels:
            metrics.counter(spec).inc(3)
        elif spec.kind is Kind.HISTOGRAM and not spec.labels:
            metrics.histogram(spec).observe(0.1)
    for slot in range(41):
        metrics.gauge(catalog.TRACK_B_SLOT_IDLE).labels(str(slot)).set(slot / 10)
    for endpoint in catalog.ENDPOINTS:
        metrics.histogram(catalog.API_REQUEST_DURATION).labels(endpoint).observe(0.05)


async def probe(lateness: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL_S)
        lateness.append(time.perf_counter() - before - PROBE_INTERVAL_S)


async def main(scrapes: int) -> None:
    metrics = Metrics(new_registry(), version="bench")
    populate_everything(metrics)
    server = ExporterServer(metrics)
    await server.start("127.0.0.1", 0)
    lateness: list[float] = []
    latencies: list[float] = []
    sizes_plain: list[int] = []
    sizes_gzip: list[int] = []
    idle: list[float] = []
    idle_stop = asyncio.Event()
    idle_task = asyncio.create_task(probe(idle, idle_stop))
    await asyncio.sleep(1.0)
    idle_stop.set()
    await idle_task
    idle.sort()
    stop = asyncio.Event()
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        probe_task = asyncio.create_task(probe(lateness, stop))
        for index in range(scrapes):
            encoding = "gzip" if index % 2 else "identity"
            started = time.perf_counter()
            async with session.get(
                server.url + "/metrics", headers={"Accept-Encoding": encoding}
            ) as response:
                body = await response.read()
            latencies.append(time.perf_counter() - started)
            if encoding == "gzip":
                sizes_gzip.append(len(body))
                sizes_plain.append(len(gzip.decompress(body)))
        stop.set()
        await probe_task
    await server.close()
    lateness.sort()
    latencies.sort()
    print(
        f"scrapes: {scrapes}, series families: {len(catalog.CATALOG)} catalog + process/platform/gc"
    )
    print(
        f"bytes per scrape: {statistics.mean(sizes_plain):.0f} plain, "
        f"{statistics.mean(sizes_gzip):.0f} gzip"
    )
    print(
        "loop hold (probe lateness) ms: "
        f"p50 {lateness[len(lateness) // 2] * 1e3:.2f}, "
        f"p99 {lateness[int(len(lateness) * 0.99)] * 1e3:.2f}, max {lateness[-1] * 1e3:.2f}"
    )
    print(
        f"idle loop lateness ms (baseline): p50 {idle[len(idle) // 2] * 1e3:.2f}, "
        f"max {idle[-1] * 1e3:.2f}"
    )
    print(
        "scrape latency ms: "
        f"p50 {latencies[len(latencies) // 2] * 1e3:.2f}, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=1.0,
        help="GIL switch interval; observer run sets 1 ms so the render thread yields the loop",
    )
    options = parser.parse_args()
    sys.setswitchinterval(options.switch_interval_ms / 1000)
    print(f"GIL switch interval: {options.switch_interval_ms} ms")
    asyncio.run(main(options.scrapes))
