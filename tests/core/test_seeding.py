"""Track B live from the start: slots seeded from the broker's volume ranking, then taken over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from metrics.registry import Metrics
from observer.kis.client import RankedSymbol
from observer.kis.errors import KisApiError, transport_failure
from observer.records import Trigger, TriggerKind
from observer.seeding import SEED_VALUE, VolumeRankSeeder, seed_triggers
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.core.conftest import observer_settings, running, sim_settings, value, wait_for

RANKED = [RankedSymbol(f"{n:06d}", n, 1000 - n) for n in range(1, 31)]


def test_seeds_are_worth_less_than_any_trigger_and_fall_with_the_rank() -> None:
    universe = {row.symbol for row in RANKED} - {"000002"}
    seeds = seed_triggers(list(reversed(RANKED)), count=5, universe=universe, at=7.0)
    assert [seed.symbol for seed in seeds] == ["000001", "000003", "000004", "000005", "000006"]
    assert all(seed.kind is TriggerKind.VOLUME_RANK and seed.at == 7.0 for seed in seeds)
    scores = [seed.score for seed in seeds]
    assert scores == sorted(scores, reverse=True) and scores[0] == SEED_VALUE < 1.0
    assert scores[-1] > 0
    assert seed_triggers(RANKED, count=0, universe=universe, at=0.0) == []
    assert seed_triggers(RANKED, count=5, universe=set(), at=0.0) == []


async def test_a_retryable_ranking_failure_is_tried_again() -> None:
    answers: list[list[RankedSymbol] | KisApiError] = [
        KisApiError("volume_rank", transport_failure("ClientConnectorError")),
        RANKED,
    ]
    offered: list[Trigger] = []

    async def rank() -> list[RankedSymbol]:
        answer = answers.pop(0)
        if isinstance(answer, KisApiError):
            raise answer
        return answer

    seeder = VolumeRankSeeder(
        rank=rank,
        offer=offered.append,
        universe=lambda: {row.symbol for row in RANKED},
        count=3,
        retry_seconds=0.01,
    )
    await seeder.run()
    assert [trigger.symbol for trigger in offered] == ["000001", "000002", "000003"]


@pytest.mark.slow
async def test_track_b_holds_the_most_traded_symbols_before_any_sweep(
    tmp_path: Path, metrics: Metrics
) -> None:
    """Track A is off here: every slot and trade comes from the seed alone (30 slots)."""
    async with SimExchange(sim_settings(symbols=300)) as sim:
        settings = observer_settings(
            tmp_path,
            track_a={"enabled": False},
            track_b={"min_hold_seconds": 0.5, "capacity": 30},
        )
        async with running(sim, settings, metrics) as app:
            await wait_for(
                lambda: (
                    value(
                        metrics,
                        "observer_trackb_triggers_total",
                        kind="volume_rank",
                        outcome="claimed",
                    )
                    == 30
                ),
                what="30 seeded slots",
            )
            assert value(metrics, "observer_trackb_slots_allocated") == 30
            await wait_for(
                lambda: value(metrics, "observer_storage_rows_written_total", kind="trade") > 0,
                what="a stored trade",
            )
            model, now = sim.state.model, sim.state.clock.now()
            by_volume = sorted(
                sim.universe_codes(),
                key=lambda code: -model.process(code, now).cumulative_volume,  # type: ignore[union-attr]
            )
            assert app.context is not None
            # A Track A trigger (worth 1.0 or more) takes a seeded slot once the hold passed.
            await asyncio.sleep(0.6)
            newcomer = next(code for code in sim.universe_codes() if code not in by_volume[:40])
            app.context.triggers.publish(
                Trigger(symbol=newcomer, kind=TriggerKind.PRICE_MOVE, score=1.0, at=time.time())
            )
            assert (
                value(
                    metrics,
                    "observer_trackb_triggers_total",
                    kind="price_move",
                    outcome="evicted_other",
                )
                == 1
            )
            assert value(metrics, "observer_trackb_slots_allocated") == 30
    with StorageReader(settings.database_path) as reader:
        traded = {row[0] for row in reader.rows("SELECT DISTINCT symbol FROM trades")}
    # The seeds are the simulator's most traded symbols (ranked moments apart: allow churn).
    assert traded and traded <= set(by_volume[:40]) | {newcomer}
