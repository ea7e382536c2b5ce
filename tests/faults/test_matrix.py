"""The fault matrix (docs/reliability.md): each simulator fault against the whole of Observer.

For every fault: Observer keeps running (data flows again), the metric that
names the fault moves, every hole in the trades is backfilled or stored as a
gap, and nothing is stored twice or invented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import System, system, until

pytestmark = pytest.mark.slow


async def assert_intact(rig: System) -> None:
    audit = await rig.settled()
    assert audit.trades > 0 and audit.symbols_with_trades >= 5, audit
    assert audit.invented == {}, audit  # nothing stored that was not generated
    assert audit.missing == {}, audit  # every hole backfilled
    assert audit.pending_gaps == 0 and audit.unrecovered_gaps == 0, audit


async def test_baseline_without_faults(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        await rig.flowing(20)
        await assert_intact(rig)


async def test_ws_drop_storm_ten_drops(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        before = rig.value("observer_trackb_reconnects_total")
        gaps = rig.value("observer_gaps_detected_total", track="b", cause="session_drop")
        registered = rig.registrations()
        for drop in range(1, 11):  # a storm: each drop as soon as the session is back

            def back(n: int = drop) -> bool:
                reconnects = rig.value("observer_trackb_reconnects_total")
                return reconnects >= before + n and rig.registrations() >= registered

            await rig.sim.inject({"kind": "ws_drop"})
            await until(back, "reconnected with every registration restored")
        await rig.flowing()
        assert rig.value("observer_trackb_reconnects_total") >= before + 10
        assert rig.value("observer_gaps_detected_total", track="b", cause="session_drop") > gaps
        await assert_intact(rig)


async def test_ws_stall_longer_than_the_watchdog(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        idle = rig.value("observer_trackb_reconnects_total", reason="idle")
        await rig.sim.inject({"kind": "ws_stall", "seconds": 2.5})
        await until(
            lambda: rig.value("observer_trackb_reconnects_total", reason="idle") > idle,
            "the watchdog reconnecting",
        )
        await rig.flowing()
        assert rig.value("observer_gaps_detected_total", track="b", cause="session_stall") > 0
        await assert_intact(rig)


async def test_refuse_ws_then_drop(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        await rig.sim.inject({"kind": "refuse_ws", "seconds": 1.5})
        await rig.sim.inject({"kind": "ws_drop"})
        await until(
            lambda: (
                rig.value("observer_trackb_reconnects_total", reason="refused") > 0
                or rig.value("observer_trackb_reconnects_total", reason="error") > 0
            ),
            "refused reconnects",
        )
        await rig.flowing()
        await assert_intact(rig)


async def test_malformed_frames_are_skipped(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        await rig.sim.inject({"kind": "malformed", "count": 5})
        await until(
            lambda: rig.value("observer_trackb_frames_malformed_total") >= 5, "malformed counted"
        )
        await rig.flowing()
        await assert_intact(rig)


async def test_token_expire_refreshes_once_and_retries(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        refreshed = rig.value("observer_token_refreshes_total", result="success")
        snapshots = rig.value("observer_track_a_snapshots_total")
        await rig.sim.inject({"kind": "token_expire"})
        await until(
            lambda: rig.value("observer_token_refreshes_total", result="success") > refreshed,
            "a token refresh",
        )
        await until(
            lambda: rig.value("observer_track_a_snapshots_total") > snapshots + 50,
            "sweeps going on with the new token",
        )
        assert rig.value("observer_api_errors_total", error_class="token") > 0
        await rig.flowing()
        await assert_intact(rig)


@pytest.mark.parametrize(
    ("msg_cd", "http_status", "error_class"),
    [("EGW00201", 500, "rate_limit"), ("EGW00123", 200, "token")],
)
async def test_rest_errors_are_survived(
    tmp_path: Path, msg_cd: str, http_status: int, error_class: str
) -> None:
    async with system(tmp_path) as rig:
        errors = rig.value("observer_api_errors_total", error_class=error_class)
        await rig.sim.inject(
            {"kind": "rest_errors", "msg_cd": msg_cd, "http_status": http_status, "seconds": 1.0}
        )
        await until(
            lambda: rig.value("observer_api_errors_total", error_class=error_class) > errors,
            f"{msg_cd} counted",
        )
        if msg_cd == "EGW00201":
            assert rig.value("observer_rate_limit_rejections_total") > 0
        swept = rig.value("observer_track_a_sweeps_total")
        await until(
            lambda: rig.value("observer_track_a_sweeps_total") >= swept + 2,
            "sweeps completing after the fault",
        )
        await rig.flowing()
        await assert_intact(rig)


async def test_latency_slows_calls_without_losing_data(tmp_path: Path, store: Path | str) -> None:
    async with system(tmp_path, store=store) as rig:
        name = "observer_api_request_duration_seconds_sum"
        spent = rig.value(name, endpoint="inquire_price")
        calls = rig.value("observer_api_request_duration_seconds_count", endpoint="inquire_price")
        await rig.sim.inject({"kind": "latency", "ms": 300, "seconds": 1.5})
        await until(
            lambda: rig.value(name, endpoint="inquire_price") > spent + 3.0,
            "slow calls observed",
        )
        slow_calls = rig.value(
            "observer_api_request_duration_seconds_count", endpoint="inquire_price"
        )
        assert (rig.value(name, endpoint="inquire_price") - spent) / (slow_calls - calls) > 0.05
        swept = rig.value("observer_track_a_sweeps_total")
        await until(lambda: rig.value("observer_track_a_sweeps_total") >= swept + 2, "sweeps")
        await rig.flowing()
        await assert_intact(rig)
