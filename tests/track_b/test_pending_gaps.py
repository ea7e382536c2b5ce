"""Gaps a killed process left ``pending`` are finished by the next one.

The "previous process" is a Storage on the database file that stores what
``TrackB.on_trades`` stores for a volume jump (the trades before it, the gap
with its window, the record after it) and ends before any backfill; the next
one is a TrackB against the simulator, reading the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from metrics import catalog
from metrics.registry import Metrics, new_registry
from observer.config import GapSettings, StorageSettings
from observer.credentials import demo_credentials
from observer.gaps import GapWindow, TrackBGapDetector
from observer.kis.client import KisClient
from observer.limiter import RateLimiter
from observer.records import GapCause, Recovery, Track, Trade
from observer.sim import SimExchange
from observer.sim.rest import TRADES_PATH
from observer.storage import Storage, StorageReader
from observer.track_b import TrackB
from tests.track_b.rig import FAST_SIM, FAST_TRACK_B, providers, wait_for

BEFORE, AFTER = 2, 12  # indexes of the trades around the hole: 9 trades missing


def fields(trades: list[Trade]) -> list[tuple[str, str, str, int, int, int]]:
    return [
        (t.symbol, t.business_date, t.time, t.price, t.volume, t.cumulative_volume) for t in trades
    ]


async def active_symbol(sim: SimExchange, trades: int) -> str:
    codes = sim.universe_codes()

    def best() -> tuple[int, str]:
        return max((len(sim.generated_trades(c)), c) for c in codes)

    await wait_for(lambda: best()[0] > trades, "a symbol with enough trades")
    return best()[1]


async def killed_with_a_pending_gap(
    database: Path, generated: list[Trade], *, business_date: str | None = None
) -> GapWindow:
    """What on_trades stores for a volume jump over ``generated[BEFORE+1:AFTER]``, no backfill."""
    if business_date is not None:  # the same trades, stamped with another day
        generated = [
            Trade(
                symbol=t.symbol,
                business_date=business_date,
                time=t.time,
                price=t.price,
                volume=t.volume,
                cumulative_volume=t.cumulative_volume,
            )
            for t in generated
        ]
    detector = TrackBGapDetector(GapSettings(), silent_after_seconds=600)
    symbol = generated[0].symbol
    detector.registered(symbol, 1000.0)
    for n, record in enumerate(generated[: BEFORE + 1]):
        assert detector.observe(record, 1000.0 + n) is None
    window = detector.observe(generated[AFTER], 1100.0)
    assert window is not None and window.gap.cause is GapCause.VOLUME_JUMP
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    async with Storage(database, settings, metrics=Metrics(new_registry(), version="t")) as first:
        for record in generated[: BEFORE + 1]:
            await first.put(record)
        await first.put(window)
        await first.put(generated[AFTER])
    return window


@contextlib.asynccontextmanager
async def restarted(
    sim: SimExchange, database: Path
) -> AsyncIterator[tuple[TrackB, Storage, Callable[[str], float]]]:
    """The next process: Storage on the same file and a running TrackB with nothing registered."""
    registry = new_registry()
    metrics = Metrics(registry, version="test")
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    async with (
        aiohttp.ClientSession() as http,
        Storage(database, settings, metrics=metrics) as storage,
    ):
        limiter = RateLimiter(FAST_SIM.rate_limit, metrics=metrics)
        client = KisClient(
            http, sim.rest_url, demo_credentials("track-b-test"), limiter=limiter, metrics=metrics
        )
        approval_key, fetch_page = providers(client)

        track = TrackB(
            FAST_TRACK_B,
            GapSettings(),
            ws_url=sim.ws_url,
            approval_key=approval_key,
            fetch_page=fetch_page,
            sink=storage,
            metrics=metrics,
            clock=sim.state.clock.now,  # its day is the simulated exchange's
            last_trades=storage.last_trades,
            pending_gaps=storage.pending_gaps,
        )
        task = asyncio.create_task(track.run(), name="track-b-restarted")

        def backfills(outcome: str) -> float:
            name = catalog.GAP_BACKFILLS.name
            return registry.get_sample_value(name, {"outcome": outcome}) or 0.0

        try:
            yield track, storage, backfills
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_pending_gap_of_today_is_backfilled_in_full_after_a_restart(
    tmp_path: Path,
) -> None:
    database = tmp_path / "observer.sqlite"
    async with SimExchange(FAST_SIM) as sim:
        symbol = await active_symbol(sim, AFTER)
        generated = sim.generated_trades(symbol)
        window = await killed_with_a_pending_gap(database, generated)
        with StorageReader(database) as reader:
            assert reader.pending_gaps() == [window]  # the window comes back exactly
            assert len(reader.trades(symbol)) == BEFORE + 2
        async with restarted(sim, database) as (track, storage, backfills):
            await wait_for(lambda: backfills("full") == 1, "the carried gap backfilled")
            await wait_for(track.backfill_idle, "backfill idle")
            await storage.flush()
            assert storage.rows_written["trade"] == AFTER - BEFORE - 1  # each missing one, once
            assert await storage.pending_gaps() == []
    with StorageReader(database) as reader:
        stored = reader.trades(symbol)
        (gap,) = reader.gaps(symbol)
        (row,) = reader.rows("SELECT COUNT(*) FROM trades WHERE symbol = ?", (symbol,))
    assert gap == window.with_recovery(Recovery.FULL).gap  # stored again under its key
    assert gap.missing_volume == sum(t.volume for t in generated[BEFORE + 1 : AFTER])
    assert fields(stored) == fields(generated[: AFTER + 1])
    assert row == (AFTER + 1,)
    assert {t.source for t in stored[BEFORE + 1 : AFTER]} == {"backfill"}


async def test_a_pending_gap_of_an_earlier_business_day_ends_none_without_a_call(
    tmp_path: Path,
) -> None:
    database = tmp_path / "observer.sqlite"
    async with SimExchange(FAST_SIM) as sim:
        symbol = await active_symbol(sim, AFTER)
        window = await killed_with_a_pending_gap(
            database, sim.generated_trades(symbol), business_date="20261123"
        )
        async with restarted(sim, database) as (track, storage, backfills):
            await wait_for(lambda: backfills("none") == 1, "the carried gap given up")
            await wait_for(track.backfill_idle, "backfill idle")
            await storage.flush()
            assert storage.rows_written["trade"] == 0
        assert TRADES_PATH not in sim.stats()["requests"]  # today's rows would be invented
    with StorageReader(database) as reader:
        assert reader.gaps(symbol) == [window.with_recovery(Recovery.NONE).gap]
        assert reader.pending_gaps() == []


OLD_GAPS = """CREATE TABLE gaps (
    symbol TEXT NOT NULL, track TEXT NOT NULL, cause TEXT NOT NULL, start REAL NOT NULL,
    "end" REAL NOT NULL, severity TEXT NOT NULL, missing_volume INTEGER, recovery TEXT NOT NULL,
    PRIMARY KEY (symbol, track, cause, start)
) WITHOUT ROWID"""


async def test_a_database_without_gap_windows_is_migrated_and_its_pending_gap_has_no_bounds(
    tmp_path: Path,
) -> None:
    database = tmp_path / "observer.sqlite"
    with contextlib.closing(sqlite3.connect(database)) as old:
        old.execute(OLD_GAPS)
        row = ("005930", "b", "volume_jump", 10.0, 12.0, "low", 7, "pending")
        old.execute("INSERT INTO gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        old.commit()
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    async with Storage(database, settings, metrics=Metrics(new_registry(), version="t")) as s:
        (carried,) = await s.pending_gaps()
    assert carried.gap.symbol == "005930" and carried.gap.track is Track.B
    assert carried.gap.missing_volume == 7 and carried.gap.recovery is Recovery.PENDING
    assert (carried.business_date, carried.after_cumulative, carried.upto_cumulative) == (
        "",
        None,
        None,
    )
    with StorageReader(database) as reader:
        columns = [r[1] for r in reader.rows("PRAGMA table_info(gaps)")]
    assert columns[-5:] == [
        "business_date",
        "after_cumulative",
        "upto_cumulative",
        "before_time",
        "since_time",
    ]


@pytest.mark.parametrize("recovery", [Recovery.FULL, Recovery.NONE])
async def test_only_pending_track_b_gaps_are_carried(tmp_path: Path, recovery: Recovery) -> None:
    database = tmp_path / "observer.sqlite"
    detector = TrackBGapDetector(GapSettings(), silent_after_seconds=600)
    detector.registered("005930", 1.0)
    first = Trade(
        symbol="005930",
        business_date="20261124",
        time="100000",
        price=1,
        volume=1,
        cumulative_volume=1,
    )
    jump = Trade(
        symbol="005930",
        business_date="20261124",
        time="100005",
        price=1,
        volume=1,
        cumulative_volume=9,
    )
    detector.observe(first, 1.0)
    window = detector.observe(jump, 2.0)
    assert window is not None
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    async with Storage(database, settings, metrics=Metrics(new_registry(), version="t")) as s:
        await s.put(window)
        await s.flush()
        assert await s.pending_gaps() == [window]
        await s.put(window.with_recovery(recovery).gap)  # a plain Gap keeps the stored window
        await s.flush()
        assert await s.pending_gaps() == []
        await s.put(window.gap)  # pending again (as a backfill never finished)
        await s.flush()
        assert await s.pending_gaps() == [window]
