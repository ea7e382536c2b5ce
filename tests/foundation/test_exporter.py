"""The exporter over real HTTP on loopback: routes, formats, readiness, summary, file export."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Rendered
from exporter.server import ExporterServer, serving
from metrics import catalog
from metrics.registry import Metrics
from observer.readiness import Readiness
from observer.records import Gap, GapCause, Severity, Track
from observer.status import SlotView

SPEC_SUMMARY_KEYS = {
    "universe": {"current_size", "total_created", "total_deleted"},
    "track_a": {"snapshots_collected", "avg_collection_duration_ms"},
    "track_b": {
        "total_slots",
        "allocated_slots",
        "available_slots",
        "triggers",
        "collection_speed",
    },
    "token": {"refreshes", "validity_seconds"},
    "gaps": {"total_detected", "low_severity", "medium_severity", "high_severity"},
    "rate_limiting": {"tokens_consumed", "total_delays"},
    "api": {"total_requests", "total_errors", "error_rate", "avg_request_duration_ms"},
}
# What the status page needs besides the source design's keys (docs/status-page.md).
LIVE_SUMMARY_KEYS = {
    "track_a": {"sweep_progress", "sweep_eta_seconds"},
    "track_b": {"slots"},
    "token": {"valid"},
    "gaps": {"recent"},
    "storage": {"queue_depth", "queue_capacity", "queue_overflows", "write_errors", "rows_written"},
    "links": {"metrics", "summary"},
    "readiness": {"first_sweep", "token"},
}


def populate(metrics: Metrics) -> None:
    """Drive every catalog metric once, as events would."""
    metrics.gauge(catalog.UNIVERSE_SIZE).set(2050)
    metrics.counter(catalog.UNIVERSE_CREATED).inc(5)
    metrics.counter(catalog.UNIVERSE_DELETED).inc(1)
    metrics.counter(catalog.TRACK_A_SNAPSHOTS).inc()
    metrics.histogram(catalog.TRACK_A_COLLECTION_DURATION).observe(0.234)
    metrics.gauge(catalog.TRACK_B_SLOTS_CAPACITY).set(41)
    metrics.gauge(catalog.TRACK_B_SLOTS_ALLOCATED).set(5)
    metrics.counter(catalog.TRACK_B_TRIGGERS).labels("price_move", "claimed").inc(2)
    metrics.gauge(catalog.TRACK_B_SLOT_IDLE).labels("0").set(1.5)
    metrics.counter(catalog.TOKEN_REFRESHES).labels("success").inc()
    metrics.gauge(catalog.TOKEN_VALIDITY).set(86400)
    gaps = metrics.counter(catalog.GAPS_DETECTED)
    for severity in ("low", "medium", "high"):
        gaps.labels("b", severity, "volume_jump").inc(2)
    metrics.counter(catalog.RATE_LIMIT_TOKENS).labels("sweep").inc(50)
    metrics.counter(catalog.RATE_LIMIT_DELAYS).labels("sweep").inc()
    metrics.counter(catalog.API_REQUESTS).labels("inquire_price", "ok").inc(2)
    metrics.counter(catalog.API_REQUESTS).labels("inquire_price", "error").inc()
    metrics.counter(catalog.API_ERRORS).labels("inquire_price", "rate_limit").inc()
    for seconds in (0.2, 0.22, 0.25):
        metrics.histogram(catalog.API_REQUEST_DURATION).labels("inquire_price").observe(seconds)


@pytest.fixture
async def served(metrics: Metrics, tmp_path: Path) -> AsyncIterator[ExporterServer]:
    server = ExporterServer(
        metrics, readiness=Readiness(), export_dir=tmp_path / "export", version="test"
    )
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    headers.setdefault("Accept-Encoding", "identity")  # aiohttp asks for gzip by default
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def test_port_zero_reports_the_bound_port(served: ExporterServer) -> None:
    assert served.port > 0
    assert served.url == f"http://127.0.0.1:{served.port}"


async def test_metrics_lists_every_catalog_metric(served: ExporterServer) -> None:
    populate(served.metrics)
    status, headers, body = await get(served.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    for spec in catalog.CATALOG:
        assert spec.family in families, spec.name
    assert "process_resident_memory_bytes" in families
    assert "python_info" in families
    created = {spec.family + "_created" for spec in catalog.CATALOG}
    assert not [
        line for line in body.decode().splitlines() if line.split("{")[0].split(" ")[0] in created
    ]


async def test_openmetrics_when_asked(served: ExporterServer) -> None:
    status, headers, body = await get(
        served.url + "/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert {f.name for f in openmetrics_families(text)} >= {catalog.API_REQUESTS.family}


async def test_gzip_when_allowed(served: ExporterServer) -> None:
    _, headers, body = await get(served.url + "/metrics", **{"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert b"observer_universe_size" in gzip.decompress(body)
    _, headers, body = await get(served.url + "/metrics", **{"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in headers and b"observer_universe_size" in body


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_promtool_check_metrics_finds_no_problem(served: ExporterServer) -> None:
    populate(served.metrics)
    _, _, body = await get(served.url + "/metrics")
    result = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


async def test_summary_has_the_spec_keys_with_live_values(served: ExporterServer) -> None:
    populate(served.metrics)
    status, _, body = await get(served.url + "/api/summary")
    assert status == 200
    summary = json.loads(body)
    assert summary.pop("ready") is False and summary.pop("ready_reason")
    keys = {key: set(value) for key, value in summary.items()}
    assert keys == {
        key: SPEC_SUMMARY_KEYS.get(key, set()) | LIVE_SUMMARY_KEYS.get(key, set())
        for key in SPEC_SUMMARY_KEYS.keys() | LIVE_SUMMARY_KEYS.keys()
    }
    assert summary["universe"] == {"current_size": 2050, "total_created": 5, "total_deleted": 1}
    assert summary["track_a"]["avg_collection_duration_ms"] == 234.0
    assert summary["track_b"]["available_slots"] == 36
    assert summary["gaps"]["high_severity"] == 2 and summary["gaps"]["total_detected"] == 6
    assert summary["api"]["total_requests"] == 3 and summary["api"]["error_rate"] == 0.333
    assert summary["api"]["avg_request_duration_ms"] == pytest.approx(223.33)


async def test_summary_carries_readiness_progress_slots_gaps_storage_and_links(
    served: ExporterServer,
) -> None:
    populate(served.metrics)
    served.metrics.gauge(catalog.STORAGE_QUEUE_DEPTH).set(12)
    served.metrics.counter(catalog.STORAGE_WRITE_ERRORS).labels("unavailable").inc(3)
    served.readiness.set("token", True, "valid for 86400 s")
    served.readiness.set("first_sweep", False, "first sweep running: 2050 symbols")
    board = served.status
    board.sweep.limit_per_second = 20.0
    board.sweep.started(2050)
    board.sweep.advanced(40)
    served.metrics.gauge(catalog.STORAGE_QUEUE_CAPACITY).set(50_000)
    board.gap(
        Gap(
            symbol="005930",
            track=Track.B,
            cause=GapCause.SESSION_DROP,
            start=100.0,
            end=104.0,
            severity=Severity.MEDIUM,
        )
    )
    board.show_slots(lambda: [SlotView(3, "000660", 90.0, None, "volume_surge", 1.5)])
    board.link("prometheus", "http://127.0.0.1:9090")
    summary = json.loads((await get(served.url + "/api/summary"))[2])
    assert summary["ready"] is False
    assert summary["ready_reason"] == "first_sweep: first sweep running: 2050 symbols"
    assert summary["readiness"]["token"] == {"ok": True, "reason": "valid for 86400 s"}
    progress = summary["track_a"]["sweep_progress"]
    assert (progress["done"], progress["total"], progress["rate_limit"]) == (40, 2050, 20.0)
    assert progress["running"] is True and progress["last_sweep_seconds"] is None
    assert summary["track_a"]["sweep_eta_seconds"] == progress["eta_seconds"]
    assert [(s["slot"], s["symbol"], s["trigger"]) for s in summary["track_b"]["slots"]] == [
        (3, "000660", "volume_surge")
    ]
    (recent,) = summary["gaps"]["recent"]
    assert (recent["symbol"], recent["cause"], recent["severity"], recent["recovery"]) == (
        "005930",
        "session_drop",
        "medium",
        "pending",
    )
    assert summary["storage"] == {
        "queue_depth": 12,
        "queue_capacity": 50_000,
        "queue_overflows": 0,
        "write_errors": 3,
        "rows_written": 0,
    }
    assert summary["token"]["valid"] is True
    assert summary["links"] == {
        "metrics": "/metrics",
        "summary": "/api/summary",
        "prometheus": "http://127.0.0.1:9090",
    }
    served.readiness.set("first_sweep", True, "1 sweeps")
    summary = json.loads((await get(served.url + "/api/summary"))[2])
    assert (summary["ready"], summary["ready_reason"]) == (True, "ok")


async def test_readyz_flips_when_ready(served: ExporterServer) -> None:
    status, _, body = await get(served.url + "/readyz")
    assert status == 503
    assert json.loads(body)["conditions"]["token"]["ok"] is False
    served.readiness.set("token", True)
    assert (await get(served.url + "/readyz"))[0] == 503
    served.readiness.set("first_sweep", True)
    status, _, body = await get(served.url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    _, _, metrics_body = await get(served.url + "/metrics")
    assert b"observer_system_ready 1.0" in metrics_body


async def test_healthz_and_landing_page(served: ExporterServer) -> None:
    status, _, body = await get(served.url + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "alive"}
    status, _, body = await get(served.url + "/")
    assert status == 200
    for link in (b"/metrics", b"/api/summary", b"/healthz", b"/readyz"):
        assert link in body


async def test_file_export_writes_both_files(served: ExporterServer, tmp_path: Path) -> None:
    populate(served.metrics)
    await served.close()  # closing writes a last time
    export = tmp_path / "export"
    assert b"observer_universe_size 2050.0" in (export / "metrics.prom").read_bytes()
    assert json.loads((export / "summary.json").read_text())["universe"]["current_size"] == 2050
    assert sorted(p.name for p in export.iterdir()) == ["metrics.prom", "summary.json"]


class SlowCollector:
    """A collector that holds its render until released, counting renders."""

    def __init__(self) -> None:
        self.armed = False  # registering collects once too (auto_describe)
        self.renders = 0
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        if self.armed:
            self.renders += 1
            self.release.wait(timeout=10)
        yield GaugeMetricFamily("observer_test_renders", "Renders so far.", value=self.renders)


class CountingServer(ExporterServer):
    """Tells when ``expected`` scrapes have asked for a render."""

    def __init__(self, metrics: Metrics, expected: int) -> None:
        super().__init__(metrics)
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self._expected = expected

    async def _render_shared(self, accept: str, accept_encoding: str) -> Rendered:
        self.arrived += 1
        if self.arrived >= self._expected:
            self.all_arrived.set()
        return await super()._render_shared(accept, accept_encoding)


async def test_concurrent_scrapes_share_one_render(metrics: Metrics) -> None:
    slow = SlowCollector()
    metrics.registry.register(slow)
    slow.armed = True
    server = CountingServer(metrics, expected=20)
    async with serving(server, "127.0.0.1", 0):
        scrapes = [asyncio.create_task(get(server.url + "/metrics")) for _ in range(20)]
        await asyncio.wait_for(server.all_arrived.wait(), 30)
        slow.release.set()  # every scrape arrived while the first render was held
        answers = await asyncio.gather(*scrapes)
        assert [status for status, _, _ in answers] == [200] * 20
        assert slow.renders == 1
        assert len({body for _, _, body in answers}) == 1
        # A later scrape renders anew: what it gets is never older than its request.
        await get(server.url + "/metrics")
        assert slow.renders == 2
