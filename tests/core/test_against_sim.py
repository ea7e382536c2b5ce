"""Observer core against the simulator: rate, token faults, EGW00201 storms, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics.registry import Metrics
from observer.records import Trigger, TriggerKind
from observer.sim import SimExchange
from observer.storage import StorageReader
from observer.universe import keep_shard
from tests.core.conftest import observer_settings, running, sim_settings, value, wait_for

pytestmark = pytest.mark.slow


def sweeps(metrics: Metrics) -> float:
    return value(metrics, "observer_track_a_sweeps_total")


async def test_twenty_per_second_gets_no_rate_rejection(tmp_path: Path, metrics: Metrics) -> None:
    async with SimExchange(sim_settings(symbols=60, rate_limit=20.0)) as sim:
        settings = observer_settings(tmp_path, rate_limit={"rate_per_second": 20.0})
        async with running(sim, settings, metrics):
            await wait_for(lambda: sweeps(metrics) >= 2, within=20, what="two sweeps")
        stats = sim.stats()
    assert stats["rejections"]["EGW00201"] == 0
    assert value(metrics, "observer_rate_limit_rejections_total") == 0
    assert value(metrics, "observer_track_a_snapshots_total") >= 120
    with StorageReader(settings.database_path) as reader:
        assert reader.counts().snapshots == value(metrics, "observer_track_a_snapshots_total")


async def test_token_expiry_means_one_new_token_and_no_lost_snapshot(
    tmp_path: Path, metrics: Metrics
) -> None:
    async with SimExchange(sim_settings(symbols=150)) as sim:
        async with running(sim, observer_settings(tmp_path), metrics):
            await wait_for(lambda: sweeps(metrics) >= 1, what="first sweep")
            assert sim.stats()["tokens_issued"] == 1
            await sim.inject({"kind": "token_expire"})
            done = sweeps(metrics)
            await wait_for(lambda: sweeps(metrics) >= done + 2, what="two sweeps after expiry")
        stats = sim.stats()
    assert stats["tokens_issued"] == 2
    assert value(metrics, "observer_token_refreshes_total", result="success") == 2
    assert (
        value(metrics, "observer_api_errors_total", endpoint="inquire_price", error_class="token")
        >= 1
    )
    assert value(metrics, "observer_track_a_snapshots_failed_total") == 0
    assert value(metrics, "observer_track_a_sweep_completeness_ratio") == 1.0


async def test_rate_limit_storm_backs_off_then_recovers(tmp_path: Path, metrics: Metrics) -> None:
    async with SimExchange(sim_settings(symbols=150)) as sim:
        settings = observer_settings(tmp_path, track_a={"retries": 2})
        async with running(sim, settings, metrics):
            await wait_for(lambda: sweeps(metrics) >= 1, what="first sweep")
            await sim.inject(
                {"kind": "rest_errors", "msg_cd": "EGW00201", "http_status": 500, "seconds": 1.0}
            )
            await wait_for(
                lambda: value(metrics, "observer_rate_limit_rejections_total") > 0,
                what="a counted rejection",
            )
            during = value(metrics, "observer_track_a_snapshots_total")
            done = sweeps(metrics)
            await wait_for(lambda: sweeps(metrics) >= done + 2, what="sweeps after the storm")
    assert (
        value(
            metrics, "observer_api_errors_total", endpoint="inquire_price", error_class="rate_limit"
        )
        > 0
    )
    assert value(metrics, "observer_track_a_snapshots_total") >= during + 150
    assert value(metrics, "observer_track_a_sweep_completeness_ratio") == 1.0
    # Back-off: far fewer rejected calls than a second of calls at full rate would make.
    assert value(metrics, "observer_rate_limit_rejections_total") < 60


async def test_a_shard_sweeps_only_its_stable_subset(tmp_path: Path, metrics: Metrics) -> None:
    async with SimExchange(sim_settings(symbols=90)) as sim:
        settings = observer_settings(tmp_path, universe={"shard": "1/3"})
        async with running(sim, settings, metrics) as app:
            await wait_for(lambda: sweeps(metrics) >= 1, what="first sweep")
            assert app.context is not None
            swept = set(app.context.universe.codes)
        expected = keep_shard(sim.universe_codes(), (1, 3))
    assert swept == expected and 0 < len(swept) < 90
    with StorageReader(settings.database_path) as reader:
        assert set(reader.snapshot_symbols()) == expected


async def test_price_moves_between_snapshots_raise_triggers(
    tmp_path: Path, metrics: Metrics
) -> None:
    seen: list[Trigger] = []
    async with SimExchange(sim_settings(symbols=40, speed=60)) as sim:
        settings = observer_settings(tmp_path, track_b={"enabled": False, "price_move_pct": 0.01})
        async with running(sim, settings, metrics) as app:
            assert app.context is not None
            app.context.triggers.subscribe(seen.append)
            await wait_for(lambda: len(seen) > 0, what="a trigger")
    assert seen[0].kind is TriggerKind.PRICE_MOVE and seen[0].score >= 1.0
    assert seen[0].symbol in sim.universe_codes()
