"""Two Observers with two keys as one collector: the universe split, one store, a leave."""

from __future__ import annotations

import contextlib
from pathlib import Path

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
