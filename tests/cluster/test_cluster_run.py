"""Two Observers with two keys as one collector: the universe split, one store, a leave."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from metrics.registry import Metrics, new_registry
from observer.config import ObserverSettings
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.core.conftest import observer_settings, running, sim_settings, value, wait_for

SYMBOLS = 60


def member_settings(tmp_path: Path, name: str, url: str) -> ObserverSettings:
    return observer_settings(
        tmp_path / name,
        storage={"url": url},
        cluster={"enabled": True, "rebalance_seconds": 0.3, "member_id": name},
        track_b={"enabled": False},
    )


async def test_two_keys_split_the_sweep_and_one_takes_all_when_the_other_leaves(
    tmp_path: Path, postgres_url: str
) -> None:
    metrics_a, metrics_b = (
        Metrics(new_registry(), version="a"),
        Metrics(new_registry(), version="b"),
    )
    async with SimExchange(sim_settings(symbols=SYMBOLS)) as sim:
        settings_a = member_settings(tmp_path, "a", postgres_url)
        async with running(sim, settings_a, metrics_a, label="cluster-a") as a:
            stack = contextlib.AsyncExitStack()
            b = await stack.enter_async_context(
                running(
                    sim, member_settings(tmp_path, "b", postgres_url), metrics_b, label="cluster-b"
                )
            )
            async with stack:
                await wait_for(
                    lambda: (
                        value(metrics_a, "observer_cluster_members") == 2
                        and value(metrics_b, "observer_cluster_members") == 2
                    ),
                    what="both members live",
                )
                assert a.context is not None and b.context is not None
                await wait_for(
                    lambda: (
                        len(a.context.universe.listed) == SYMBOLS  # type: ignore[union-attr]
                        and len(b.context.universe.listed) == SYMBOLS
                    ),  # type: ignore[union-attr]
                    what="universes loaded",
                )
                # Each takes its share when it starts sweeping and gives the other's up at
                # its next rebalance: briefly both sweep some symbols, never neither.
                await wait_for(
                    lambda: not set(a.context.universe.codes) & set(b.context.universe.codes),  # type: ignore[union-attr]
                    what="the split settled",
                )
                share_a = set(a.context.universe.codes)
                share_b = set(b.context.universe.codes)
                assert share_a and share_b and not share_a & share_b
                assert share_a | share_b == set(a.context.universe.listed)
                swept = value(metrics_b, "observer_track_a_sweeps_total")
                await wait_for(
                    lambda: value(metrics_b, "observer_track_a_sweeps_total") >= swept + 2,
                    what="member b sweeping its share",
                )
                leaders = value(metrics_a, "observer_cluster_leader") + value(
                    metrics_b, "observer_cluster_leader"
                )
                assert leaders == 1
            # b left: a owns the whole universe at its next rebalance.
            await wait_for(
                lambda: (
                    value(metrics_a, "observer_cluster_members") == 1
                    and len(a.context.universe.codes) == SYMBOLS
                ),  # type: ignore[union-attr]
                what="a sweeping everything",
            )
            assert value(metrics_a, "observer_cluster_symbols_owned") == SYMBOLS
    with StorageReader(postgres_url) as reader:
        per_symbol = reader.snapshot_symbols()
        assert set(per_symbol) == set(a.context.universe.listed)
        distinct = next(
            iter(reader.rows("SELECT COUNT(DISTINCT (symbol, collected_at)) FROM snapshots"))
        )[0]
        assert distinct == reader.counts().snapshots
        members = list(reader.rows("SELECT member_id FROM cluster_members"))
        assert members == []  # both left cleanly


@pytest.mark.slow
async def test_a_trigger_storm_never_takes_a_key_past_41_registrations(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two members, 300 symbols, thresholds so low that every snapshot is a trigger: the
    pool fills both keys, each key's session holds at most 41 registrations and the
    simulator refuses none."""
    storm = {"price_move_pct": 0.001, "volume_surge_ratio": 1.0, "min_hold_seconds": 0.0}
    metrics = [Metrics(new_registry(), version=name) for name in ("a", "b")]
    async with SimExchange(sim_settings(symbols=300)) as sim:
        settings = [
            member_settings(tmp_path, name, postgres_url).model_copy(
                update={
                    "track_b": member_settings(tmp_path, name, postgres_url).track_b.model_copy(
                        update={"enabled": True, **storm}
                    )
                }
            )
            for name in ("a", "b")
        ]
        async with (
            running(sim, settings[0], metrics[0], label="storm-a") as a,
            running(sim, settings[1], metrics[1], label="storm-b") as b,
        ):
            keys = [a.endpoint.credentials.app_key, b.endpoint.credentials.app_key]
            await wait_for(
                lambda: (
                    all(sim.key_stats(key)["registrations_peak"] >= 41 for key in keys)
                    and all(  # each member counts what became of its own triggers
                        value(m, "observer_trackb_triggers_total", outcome="refused")
                        + value(m, "observer_trackb_triggers_total", outcome="evicted_other")
                        > 0
                        for m in metrics
                    )
                ),
                within=60,
                what="both keys full and still offered triggers",
            )
            for key in keys:
                counts = sim.key_stats(key)
                assert 0 < counts["registrations_peak"] <= 41, counts
                assert counts["rejections"]["OPSP0008"] == 0, counts
                assert counts["rejections"]["EGW00201"] == 0, counts
