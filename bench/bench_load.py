"""Scrape load while ingesting: do 200 concurrent scrapers slow Observer's collection down?

Runs the simulator (``observer sim``) and Observer (``observer run``) as separate
processes, as in production, lets Observer ingest at the simulator's full speed
(Track A sweeps as fast as the rate limit allows; Track B subscribed and
receiving trades), then measures three windows of ``--duration`` seconds each:
no scrapers, ``--scrapers`` concurrent scrapers hammering ``/metrics`` (gzip,
OpenMetrics, as Prometheus asks), and no scrapers again. Ingest is Observer's
own count of rows stored and snapshots collected per second, compared between
the loaded window and the mean of the two quiet ones (market drift cancels out),
and Track B's trades received against the records the simulator sent.

    .venv/bin/python bench/bench_load.py [--duration 30] [--scrapers 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from observer.credentials import demo_credentials

PYTHON = sys.executable
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
SCRAPE_TIMEOUT_S = 10.0  # Prometheus's default scrape timeout
CREDENTIALS = demo_credentials("bench-load")


@dataclass
class Window:
    name: str
    seconds: float
    rows: float  # rows stored in the window (all kinds)
    snapshots: float
    trades_received: float
    records_sent: float = 0.0  # by the simulator, to Observer's WebSocket session
    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0
    queue_depth_max: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


async def read_line(stream: asyncio.StreamReader, prefix: str) -> str:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"process ended before printing {prefix!r}")
        if line.startswith(prefix):
            return line.split()[1]


@asynccontextmanager
async def process(
    *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "observer", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def scraper(http: aiohttp.ClientSession, url: str, window: Window, until: float) -> None:
    headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            async with http.get(url + "/metrics", headers=headers) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            window.latencies_s.append(time.perf_counter() - started)
        else:
            window.failures += 1


async def records_sent(http: aiohttp.ClientSession, sim_url: str) -> float:
    async with http.get(sim_url + "/sim/stats") as response:
        stats = await response.json()
    return float(sum(stats["records_sent"].values()))


async def measure(url: str, sim_url: str, name: str, seconds: float, scrapers: int) -> Window:
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
    async with (
        aiohttp.ClientSession() as probe,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as load,
    ):
        before = await scrape(probe, url)
        sent_before = await records_sent(probe, sim_url)
        started = time.monotonic()
        window = Window(name, seconds, 0, 0, 0)
        until = started + seconds
        tasks = [asyncio.create_task(scraper(load, url, window, until)) for _ in range(scrapers)]
        while time.monotonic() < until:
            await asyncio.sleep(1.0)
            depth = (await scrape(probe, url)).get("observer_storage_queue_depth", 0.0)
            window.queue_depth_max = max(window.queue_depth_max, depth)
        await asyncio.gather(*tasks)
        after = await scrape(probe, url)
        window.records_sent = await records_sent(probe, sim_url) - sent_before
        window.seconds = time.monotonic() - started

    def delta(metric: str) -> float:
        return after.get(metric, 0.0) - before.get(metric, 0.0)

    window.rows = delta("observer_storage_rows_written_total")
    window.snapshots = delta("observer_track_a_snapshots_total")
    window.trades_received = delta("observer_trackb_items_received_total")
    return window


def report(windows: list[Window], scrapers: int) -> None:
    for w in windows:
        line = (
            f"{w.name:>12}: {w.rows_per_s:8.1f} rows/s stored, "
            f"{w.snapshots / w.seconds:6.1f} snapshots/s, "
            f"{w.trades_received / w.seconds:7.1f} trades/s received "
            f"of {w.records_sent / w.seconds:.1f} sent, "
            f"storage queue max {w.queue_depth_max:.0f}"
        )
        print(line)
    loaded, quiet_windows = windows[1], (windows[0], windows[2])
    quiet = statistics.mean(w.rows_per_s for w in quiet_windows)
    quiet_snapshots = statistics.mean(w.snapshots / w.seconds for w in quiet_windows)
    lat = sorted(loaded.latencies_s)
    if lat:
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(
            f"scrapes: {scrapers} scrapers, {len(lat)} ok, {loaded.failures} failed, "
            f"{len(lat) / loaded.seconds:.0f}/s; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms"
        )
    else:
        print(f"scrapes: none succeeded, {loaded.failures} failed")
    print(
        f"ingest ratio loaded / quiet: rows stored {loaded.rows_per_s / quiet:.3f}, "
        f"Track A snapshots {loaded.snapshots / loaded.seconds / quiet_snapshots:.3f}"
    )
    if loaded.records_sent:
        ratio = loaded.trades_received / loaded.records_sent
        print(f"Track B while scraped: received / sent {ratio:.3f}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as directory:
        config = Path(directory) / "observer.yaml"
        config.write_text(
            f"rate_limit: {{rate_per_second: {args.rate * 0.9}}}\n"
            "track_a: {sweep_when_closed: true}\n"
            "track_b: {price_move_pct: 0.05, volume_surge_ratio: 1.5}\n"
            "log_level: WARNING\n"
        )
        sim_args = ["sim", "--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"]
        sim_args += ["--symbols", str(args.symbols), "--rate-limit", str(args.rate)]
        sim_args += ["--always-open", "--speed", str(args.speed)]
        env = os.environ | {
            "KIS_APP_KEY": CREDENTIALS.app_key,
            "KIS_APP_SECRET": CREDENTIALS.app_secret,
        }
        async with process(*sim_args) as sim:
            assert sim.stdout is not None
            rest_url = await read_line(sim.stdout, "rest_url")
            ws_url = await read_line(sim.stdout, "ws_url")
            run_args = ["run", "--provider", "kis", "--rest-url", rest_url, "--ws-url", ws_url]
            run_args += ["--listen", "127.0.0.1:0", "--config", str(config)]
            run_args += ["--data-dir", directory]
            async with process(*run_args, env=env) as observer:
                assert observer.stdout is not None
                url = await read_line(observer.stdout, "exporter_url")
                print(f"warming up {args.warmup:.0f} s: {args.symbols} symbols, {args.rate}/s")
                await asyncio.sleep(args.warmup)
                windows = [
                    await measure(url, rest_url, "quiet", args.duration, 0),
                    await measure(url, rest_url, "scraped", args.duration, args.scrapers),
                    await measure(url, rest_url, "quiet again", args.duration, 0),
                ]
    report(windows, args.scrapers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per window")
    parser.add_argument("--scrapers", type=int, default=200, help="concurrent scrapers")
    parser.add_argument("--symbols", type=int, default=500, help="simulated instruments")
    parser.add_argument("--rate", type=float, default=100.0, help="REST calls/s the sim allows")
    parser.add_argument("--speed", type=float, default=5.0, help="simulated seconds per second")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    asyncio.run(main(parser.parse_args()))
