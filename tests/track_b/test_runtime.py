"""Track B inside ObserverApp: Track A's triggers claim slots, frames are stored, gaps filled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from metrics.registry import Metrics
from observer.config import ObserverSettings
from observer.credentials import demo_credentials
from observer.readiness import Readiness
from observer.records import GapCause, Recovery
from observer.runtime import Endpoint, ObserverApp
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.track_b.rig import FAST_SIM, catalog, wait_for


def settings(tmp_path: Path, *, enabled: bool = True) -> ObserverSettings:
    return ObserverSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "rate_limit": {"rate_per_second": 20.0},
            "storage": {"flush_interval_seconds": 0.05},
            "track_b": {
                "enabled": enabled,
                "capacity": 5,
                "seed_slots": 0,  # every slot from Track A's triggers here
                "price_move_pct": 0.05,
                "min_hold_seconds": 60,
                "idle_timeout_seconds": 3,
                "reconnect_initial_seconds": 0.05,
                "reconnect_max_seconds": 0.5,
            },
        }
    )


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_triggers_from_track_a_feed_track_b_and_gaps_are_filled(
    tmp_path: Path, metrics: Metrics
) -> None:
    config = settings(tmp_path)
    async with SimExchange(FAST_SIM.model_copy(update={"rate_limit": 20.0})) as sim:
        endpoint = Endpoint(sim.rest_url, sim.ws_url, demo_credentials("tb-e2e"), always_open=True)
        app = ObserverApp(config, endpoint, metrics=metrics, readiness=Readiness())
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))

        def value(spec: catalog.MetricSpec, **labels: str) -> float:
            return metrics.registry.get_sample_value(spec.name, labels) or 0.0

        try:
            await wait_for(lambda: sim.stats()["registrations"] == 5, "five slots claimed", 60)
            await wait_for(lambda: value(catalog.TRACK_B_ITEMS_RECEIVED) > 0, "records", 30)
            # Only the app's session registers at this exchange: symbols with frames are its own.
            target = sorted(code for code, n in sim.stats()["frames_sent"].items() if n)[0]
            await sim.inject({"kind": "frame_drop", "symbol": target, "count": 2})
            await wait_for(
                lambda: value(catalog.GAP_BACKFILLS, outcome="full") >= 1, "a filled gap", 60
            )
            # The status page's view: the held slots and the gap, detected then recovered.
            view = app.status.view()
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
        assert value(catalog.TRACK_B_TRIGGERS, kind="price_move", outcome="claimed") >= 5
        assert sim.stats()["rejections"]["OPSP0008"] == 0
        with StorageReader(config.database_path) as reader:
            gaps = reader.gaps(target)
            assert [(g.cause, g.recovery) for g in gaps] == [(GapCause.VOLUME_JUMP, Recovery.FULL)]
            assert gaps[0].missing_volume == sim.stats()["volume_dropped"][target]
            assert any(t.source == "backfill" for t in reader.trades(target))
        slots = view["slots"]
        assert [slot["slot"] for slot in slots] == [0, 1, 2, 3, 4]
        assert {slot["trigger"] for slot in slots} == {"price_move"}
        assert target in {slot["symbol"] for slot in slots}
        assert any(slot["last_frame_age_seconds"] is not None for slot in slots)
        (shown,) = [gap for gap in view["recent_gaps"] if gap["symbol"] == target]
        assert (shown["cause"], shown["recovery"]) == ("volume_jump", "full")
        assert shown["missing_volume"] == gaps[0].missing_volume
        assert view["sweep_progress"]["sweeps"] >= 1 and view["sweep_progress"]["rate_limit"] == 20


async def test_disabled_track_b_never_connects(tmp_path: Path, metrics: Metrics) -> None:
    async with SimExchange(FAST_SIM) as sim:
        endpoint = Endpoint(sim.rest_url, sim.ws_url, demo_credentials("tb-off"), always_open=True)
        app = ObserverApp(
            settings(tmp_path, enabled=False), endpoint, metrics=metrics, readiness=Readiness()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            await wait_for(
                lambda: (
                    (metrics.registry.get_sample_value(catalog.TRACK_A_SNAPSHOTS.name) or 0) >= 20
                ),
                "Track A sweeping",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
        assert sim.stats()["approval_keys_issued"] == 0
        assert sim.stats()["ws_sessions_open"] == 0
