"""Tracking against a real Sentry envelope endpoint on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import sentry_sdk

from exporter.server import ExporterServer
from metrics.registry import Metrics
from observer import __version__
from observer.config import SentrySettings
from observer.errors import ConfigError, ObserverError
from observer.records import Gap, GapCause, Recovery, Severity, Track
from observer.tracking import Tracking, monitor_performance, trace_operation
from tests.tracking.conftest import MakeTracking
from tests.tracking.sink import EnvelopeSink


def events(sink: EnvelopeSink) -> list[dict[str, Any]]:
    return sink.items("event")


def transactions(sink: EnvelopeSink) -> list[dict[str, Any]]:
    return sink.items("transaction")


def event_with(sink: EnvelopeSink, fingerprint_head: str) -> list[dict[str, Any]]:
    return [e for e in events(sink) if e.get("fingerprint", [None])[0] == fingerprint_head]


def test_off_without_a_dsn() -> None:
    tracking = Tracking(SentrySettings(), environ={})
    assert not tracking.enabled
    assert not tracking.start()
    assert not sentry_sdk.get_client().is_active()

    @monitor_performance(threshold_ms=0, op="test.off")
    def work(value: int) -> int:
        return value * 2

    assert work(21) == 42
    with trace_operation("nothing", "test.off") as span:
        assert span is None
    tracking.slot_starvation(3, 60.0)  # no client: nothing to send, nothing raised
    tracking.close()


def test_dsn_from_sentry_dsn_variable(sink: EnvelopeSink) -> None:
    tracking = Tracking(SentrySettings(), environ={"SENTRY_DSN": sink.dsn})
    assert tracking.enabled and tracking.dsn == sink.dsn
    configured = Tracking(
        SentrySettings(dsn="http://k@127.0.0.1:1/2"), environ={"SENTRY_DSN": sink.dsn}
    )
    assert configured.dsn == "http://k@127.0.0.1:1/2"


def test_malformed_dsn_is_a_config_error() -> None:
    tracking = Tracking(SentrySettings(dsn="not a dsn"), environ={})
    with pytest.raises(ConfigError, match=r"sentry\.dsn"):
        tracking.start()
    assert not sentry_sdk.get_client().is_active()


def test_exception_event_carries_release_environment_and_tags(
    sink: EnvelopeSink, make_tracking: MakeTracking
) -> None:
    make_tracking(tags={"provider": "sim"})
    try:
        raise ObserverError("sweep failed")
    except ObserverError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush()
    sink.wait_for(lambda s: len(events(s)) == 1)
    (event,) = events(sink)
    assert event["release"] == f"observer@{__version__}"
    assert event["environment"] == "test"
    assert event["tags"]["provider"] == "sim"
    assert event["exception"]["values"][-1]["type"] == "ObserverError"
    assert sink.envelopes[0].project == "1"


def test_decorator_traces_sync_calls_and_warns_past_the_threshold(
    sink: EnvelopeSink, make_tracking: MakeTracking
) -> None:
    make_tracking(traces_sample_rate=1.0)

    @monitor_performance(threshold_ms=60_000, op="test.fast")
    def fast() -> str:
        return "fast"

    @monitor_performance(threshold_ms=0, op="test.slow", name="slow-call")
    def slow() -> str:
        return "slow"

    with trace_operation("sweep", "track_a.sweep"):
        assert fast() == "fast"
        assert slow() == "slow"
    sentry_sdk.flush()
    sink.wait_for(lambda s: bool(event_with(s, "slow-operation") and transactions(s)))
    (warning,) = event_with(sink, "slow-operation")  # fast() stayed under its threshold
    assert warning["level"] == "warning"
    assert warning["fingerprint"] == ["slow-operation", "test.slow", "slow-call"]
    assert warning["tags"]["op"] == "test.slow"
    assert warning["contexts"]["performance"]["threshold_ms"] == 0
    (transaction,) = transactions(sink)
    assert transaction["transaction"] == "sweep"
    assert transaction["contexts"]["trace"]["op"] == "track_a.sweep"
    spans = {span["op"]: span for span in transaction["spans"]}
    assert spans["test.slow"]["description"] == "slow-call"
    assert spans["test.fast"]["description"].endswith("fast")


async def test_decorator_and_context_manager_work_for_coroutines(
    sink: EnvelopeSink, make_tracking: MakeTracking
) -> None:
    make_tracking(traces_sample_rate=1.0)

    @monitor_performance(threshold_ms=0, op="test.async")
    async def fetch(symbol: str) -> str:
        await asyncio.sleep(0)
        return symbol

    assert await fetch("005930") == "005930"  # top level: its own transaction
    with pytest.raises(ValueError, match="bad page"):
        async with (
            trace_operation("backfill", "track_b.backfill", symbol="005930"),
            trace_operation("page", "kis.trades_by_time"),
        ):
            raise ValueError("bad page")
    await asyncio.to_thread(sentry_sdk.flush)
    sink.wait_for(lambda s: len(transactions(s)) == 2 and bool(event_with(s, "slow-operation")))
    by_name = {t["transaction"]: t for t in transactions(sink)}
    assert by_name[fetch.__wrapped__.__qualname__]["contexts"]["trace"]["op"] == "test.async"  # type: ignore[attr-defined]
    backfill = by_name["backfill"]
    assert backfill["contexts"]["trace"]["status"] == "internal_error"
    assert backfill["contexts"]["trace"]["data"]["symbol"] == "005930"
    (page,) = backfill["spans"]
    assert page["op"] == "kis.trades_by_time" and page["status"] == "internal_error"


def test_custom_events_carry_context_and_group_by_fingerprint(
    sink: EnvelopeSink, make_tracking: MakeTracking
) -> None:
    from observer.credentials import demo_credentials

    tracking = make_tracking()
    credentials = demo_credentials("tracking-events")
    tracking.token_refresh_failed(
        reason="issuance refused", error_code="EGW00133", http_status=403, credentials=credentials
    )
    for symbol in ("005930", "000660"):
        tracking.high_severity_gap(
            Gap(
                symbol=symbol,
                track=Track.B,
                cause=GapCause.SESSION_DROP,
                start=1_700_000_000.0,
                end=1_700_000_400.0,
                severity=Severity.HIGH,
                recovery=Recovery.PARTIAL,
            )
        )
    tracking.slot_starvation(12, 300.0, capacity=41, allocated=41)
    tracking.reconnect_storm(10, 60.0, last_reason="ws_drop")
    sentry_sdk.flush()
    sink.wait_for(lambda s: len(events(s)) == 5)

    (token,) = event_with(sink, "token-refresh-failed")
    assert token["fingerprint"] == ["token-refresh-failed", "EGW00133"]
    assert token["contexts"]["token_refresh"]["http_status"] == 403
    assert token["tags"]["key_fingerprint"] == credentials.fingerprint
    gaps = event_with(sink, "high-severity-gap")
    assert len(gaps) == 2
    assert all(g["fingerprint"] == ["high-severity-gap", "b", "session_drop"] for g in gaps)
    assert {g["tags"]["symbol"] for g in gaps} == {"005930", "000660"}
    assert gaps[0]["contexts"]["gap"]["duration_s"] == 400.0
    (starvation,) = event_with(sink, "slot-starvation")
    assert starvation["contexts"]["slots"] == {
        "refused": 12,
        "window_s": 300.0,
        "capacity": 41,
        "allocated": 41,
    }
    (storm,) = event_with(sink, "reconnect-storm")
    assert storm["contexts"]["reconnects"]["count"] == 10
    assert storm["tags"]["track"] == "b"


async def test_exporter_requests_are_transactions_with_the_tags(
    sink: EnvelopeSink, make_tracking: MakeTracking, metrics: Metrics
) -> None:
    make_tracking(traces_sample_rate=1.0, tags={"provider": "sim"})
    server = ExporterServer(metrics, version="test")  # built after init, as in observer run
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as reply:
            assert reply.status == 200
    finally:
        await server.close()
    await asyncio.to_thread(sentry_sdk.flush)
    sink.wait_for(lambda s: any(t["transaction"] == "GET /metrics" for t in transactions(s)))
    (scrape,) = [t for t in transactions(sink) if t["transaction"] == "GET /metrics"]
    assert scrape["contexts"]["trace"]["op"] == "http.server"
    assert scrape["tags"]["provider"] == "sim" and scrape["environment"] == "test"


async def test_no_trace_headers_are_sent_to_the_broker(make_tracking: MakeTracking) -> None:
    make_tracking(traces_sample_rate=1.0)
    seen: list[dict[str, str]] = []

    async def record(request: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return aiohttp.web.json_response({"rt_cd": "0"})

    app = aiohttp.web.Application()
    app.router.add_get("/uapi/domestic-stock/v1/quotations/inquire-price", record)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with (
            trace_operation("sweep", "track_a.sweep"),
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/uapi/domestic-stock/v1/quotations/inquire-price") as r,
        ):
            assert r.status == 200
    finally:
        await runner.cleanup()
    (headers,) = seen
    assert (
        "sentry-trace" not in headers and "baggage" not in headers and "traceparent" not in headers
    )


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_profiles_sample_rate_profiles_sampled_transactions(
    sink: EnvelopeSink, make_tracking: MakeTracking, rate: float
) -> None:
    make_tracking(traces_sample_rate=1.0, profiles_sample_rate=rate)  # no deprecation warning
    with trace_operation("sweep", "track_a.sweep"):
        sum(range(10_000))
    sentry_sdk.flush()
    sink.wait_for(lambda s: bool(transactions(s)))
    (transaction,) = transactions(sink)
    profiled = "profiler_id" in transaction["contexts"].get("profile", {})
    assert profiled is (rate > 0)
