"""Every Universe, Track A, token, rate-limit and API metric moves, read from /metrics;
and a kill -9 mid-sweep followed by a restart reuses the token and stores nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.server import ExporterServer
from metrics.registry import Metrics
from observer.credentials import demo_credentials
from observer.readiness import Readiness
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.core.conftest import observer_settings, running, sim_settings, value, wait_for

pytestmark = pytest.mark.slow
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def exercise(sim: SimExchange, metrics: Metrics) -> float:
    """Sweeps, a business-error spell, an EGW00201 storm and a day change of the universe.

    Returns the deepest sweep queue seen during a sweep.
    """
    await wait_for(lambda: value(metrics, "observer_track_a_sweeps_total") >= 1)
    depth = 0.0
    for _ in range(20):  # the limiter queue is busy during a sweep
        depth = max(depth, value(metrics, "observer_rate_limit_queue_depth", lane="sweep"))
        await asyncio.sleep(0.01)
    fresh = {"result": "fresh"}
    await wait_for(lambda: value(metrics, "observer_track_a_freshness_checks_total", **fresh) > 0)
    # Longer than the expected cadence (5 s): the symbols it fails go stale.
    spell = {"kind": "rest_errors", "msg_cd": "OPSQ2000", "http_status": 200, "seconds": 8.0}
    await sim.inject(spell)
    await wait_for(lambda: value(metrics, "observer_track_a_snapshots_failed_total") > 0)
    stale = {"result": "stale"}
    await wait_for(lambda: value(metrics, "observer_track_a_freshness_checks_total", **stale) > 0)
    storm = {"kind": "rest_errors", "msg_cd": "EGW00201", "http_status": 500, "seconds": 0.3}
    await sim.clear_faults()
    await sim.inject(storm)
    await wait_for(lambda: value(metrics, "observer_rate_limit_rejections_total") > 0)
    await wait_for(lambda: value(metrics, "observer_universe_deleted_total") > 0, within=20)
    await wait_for(lambda: value(metrics, "observer_gaps_detected_total") > 0)
    gap_rows = {"kind": "gap"}
    await wait_for(lambda: value(metrics, "observer_storage_rows_written_total", **gap_rows) > 0)
    # A sweep after the faults collected something again.
    await wait_for(lambda: value(metrics, "observer_track_a_sweep_completeness_ratio") > 0)
    return depth


async def test_every_core_metric_moves(tmp_path: Path, metrics: Metrics) -> None:
    readiness = Readiness()
    server = ExporterServer(metrics, readiness=readiness)
    await server.start("127.0.0.1", 0)
    # 3 s before a simulated midnight: the next day's master files list one share and drop one.
    sim_config = sim_settings(rate_limit=200.0, start_at="2026-12-04 23:59:57")
    settings = observer_settings(
        tmp_path,
        rate_limit={"rate_per_second": 200.0},
        universe={"refresh_interval_seconds": 1.0},
        # A sweep of 100 symbols takes 0.5 s at 200/s and over 3 s on a loaded machine:
        # the cadence leaves room for that (fresh snapshots), the 6 s error spell does not
        # (stale ones).
        track_a={"retries": 0, "expected_cadence_seconds": 5.0},
    )
    try:
        async with SimExchange(sim_config) as sim:
            before = await scrape(server.url)
            async with running(sim, settings, metrics, readiness=readiness):
                depth = await exercise(sim, metrics)
                after = await scrape(server.url)
                assert readiness.ready, readiness.report()
    finally:
        await server.close()

    assert depth > 0
    moved_up = [
        ("observer_universe_created_total", {}),
        ("observer_universe_deleted_total", {}),
        ("observer_track_a_snapshots_total", {}),
        ("observer_track_a_snapshots_failed_total", {}),
        ("observer_track_a_collection_duration_seconds_count", {}),
        ("observer_track_a_sweeps_total", {}),
        ("observer_track_a_sweep_duration_seconds_count", {}),
        ("observer_track_a_freshness_checks_total", {"result": "fresh"}),
        ("observer_track_a_freshness_checks_total", {"result": "stale"}),
        ("observer_gaps_detected_total", {"track": "a", "cause": "stale_snapshot"}),
        ("observer_token_refreshes_total", {"result": "success"}),
        ("observer_rate_limit_tokens_total", {"lane": "sweep"}),
        ("observer_rate_limit_delays_total", {"lane": "sweep"}),
        ("observer_rate_limit_delay_duration_seconds_count", {"lane": "sweep"}),
        ("observer_rate_limit_rejections_total", {}),
        ("observer_api_requests_total", {"endpoint": "inquire_price", "outcome": "ok"}),
        ("observer_api_requests_total", {"endpoint": "inquire_price", "outcome": "error"}),
        ("observer_api_requests_total", {"endpoint": "token", "outcome": "ok"}),
        ("observer_api_requests_total", {"endpoint": "master_file", "outcome": "ok"}),
        ("observer_api_request_duration_seconds_count", {"endpoint": "inquire_price"}),
        ("observer_api_errors_total", {"endpoint": "inquire_price", "error_class": "business"}),
        ("observer_api_errors_total", {"endpoint": "inquire_price", "error_class": "rate_limit"}),
        ("observer_storage_rows_written_total", {"kind": "snapshot"}),
        ("observer_storage_rows_written_total", {"kind": "gap"}),
    ]
    for name, labels in moved_up:
        assert total(after, name, **labels) > total(before, name, **labels), (name, labels)
    assert total(after, "observer_universe_size") >= 99
    assert 0 < total(after, "observer_track_a_sweep_completeness_ratio") <= 1
    assert 86000 < total(after, "observer_token_validity_seconds") <= 86400
    assert total(after, "observer_market_open") == 1
    assert total(after, "observer_system_ready") == 1


async def _exporter_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    key, _, url = line.decode().strip().partition(" ")
    assert key == "exporter_url", line
    return url


async def test_kill_9_mid_sweep_then_restart(tmp_path: Path) -> None:
    credentials = demo_credentials("restart-test")
    config = tmp_path / "observer.yaml"
    config.write_text(
        "rate_limit: {rate_per_second: 100}\n"
        "track_a: {sweep_when_closed: true}\n"
        "storage: {flush_interval_seconds: 0.05}\n"
    )
    env = os.environ | {
        "KIS_APP_KEY": credentials.app_key,
        "KIS_APP_SECRET": credentials.app_secret,
    }

    async with SimExchange(sim_settings(symbols=400)) as sim:
        command = [
            sys.executable, "-m", "observer", "run", "--provider", "kis",
            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--listen", "127.0.0.1:0",
            "--config", str(config), "--data-dir", str(tmp_path / "data"),
        ]  # fmt: skip

        async def start() -> tuple[asyncio.subprocess.Process, str]:
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            return process, await _exporter_url(process)

        async def snapshots(url: str) -> float:
            return total(await scrape(url), "observer_track_a_snapshots_total")

        first, url = await start()
        for _ in range(500):
            if await snapshots(url) >= 100:
                break
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-sweep: 400 symbols take 4 s at 100/s
        await first.wait()
        assert sim.stats()["tokens_issued"] == 1

        second, url = await start()
        try:
            for _ in range(600):
                samples = await scrape(url)
                if total(samples, "observer_track_a_sweeps_total") >= 1:
                    break
                await asyncio.sleep(0.05)
            assert total(samples, "observer_track_a_sweeps_total") >= 1
            assert total(samples, "observer_token_refreshes_total") == 0  # the cache was reused
        finally:
            second.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(second.wait(), timeout=30)
        assert code == 0
        stats = sim.stats()
    assert stats["tokens_issued"] == 1
    served = sum(stats["requests"]["/uapi/domestic-stock/v1/quotations/inquire-price"].values())
    with StorageReader(tmp_path / "data" / "observer.sqlite") as reader:
        stored = reader.counts().snapshots
        duplicates = list(
            reader.rows(
                "SELECT symbol, collected_at FROM snapshots GROUP BY 1, 2 HAVING COUNT(*) > 1"
            )
        )
        symbols = reader.snapshot_symbols()
    assert duplicates == []
    assert 400 <= stored <= served  # one row per answered call at most: nothing stored twice
    assert len(symbols) == 400  # the restarted run swept the whole universe
