"""Storage: unique keys across restarts, gap recovery upsert, overflow, disk-full retry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from metrics import catalog
from metrics.registry import Metrics
from observer.config import StorageSettings
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track, Trade
from observer.storage import Storage, StorageReader
from tests.core.storage_util import sqlite_connection


def trade(cumulative: int, *, source: str = "ws") -> Trade:
    return Trade(
        symbol="005930",
        business_date="20261124",
        time="101500",
        price=71500,
        volume=10,
        cumulative_volume=cumulative,
        source=source,
    )


def gap(recovery: Recovery) -> Gap:
    return Gap(
        symbol="005930",
        track=Track.B,
        cause=GapCause.VOLUME_JUMP,
        start=100.0,
        end=130.0,
        severity=Severity.LOW,
        missing_volume=40,
        recovery=recovery,
    )


def written(metrics: Metrics, kind: str) -> float:
    return float(metrics.counter(catalog.STORAGE_ROWS_WRITTEN).labels(kind)._value.get())


async def test_records_are_stored_once_across_restarts(tmp_path: Path, metrics: Metrics) -> None:
    path = tmp_path / "observer.sqlite"
    snapshot = Snapshot(symbol="005930", collected_at=1.5, price=1, cumulative_volume=2)
    async with Storage(path, StorageSettings(), metrics=metrics) as storage:
        for cumulative in (10, 20, 30, 20):
            await storage.put(trade(cumulative))
        await storage.put(snapshot)
        await storage.flush()
        assert written(metrics, "trade") == 3
    async with Storage(path, StorageSettings(), metrics=metrics) as storage:
        await storage.put(trade(30, source="backfill"))  # the WebSocket twin is already there
        await storage.put(trade(40, source="backfill"))
        await storage.put(snapshot)
    with StorageReader(path) as reader:
        assert [t.cumulative_volume for t in reader.trades("005930")] == [10, 20, 30, 40]
        assert reader.counts().snapshots == 1
    assert written(metrics, "trade") == 4 and written(metrics, "snapshot") == 1


async def test_a_gap_stored_again_updates_its_recovery(tmp_path: Path, metrics: Metrics) -> None:
    path = tmp_path / "observer.sqlite"
    async with Storage(path, StorageSettings(), metrics=metrics) as storage:
        await storage.put(gap(Recovery.PENDING))
        await storage.flush()
        await storage.put(gap(Recovery.FULL))
    with StorageReader(path) as reader:
        stored = reader.gaps()
    assert [g.recovery for g in stored] == [Recovery.FULL]
    assert stored[0].missing_volume == 40
    assert written(metrics, "gap") == 1


async def test_a_full_queue_makes_producers_wait_and_is_counted(
    tmp_path: Path, metrics: Metrics
) -> None:
    settings = StorageSettings(queue_size=2, batch_size=1, flush_interval_seconds=0.01)
    async with Storage(tmp_path / "db.sqlite", settings, metrics=metrics) as storage:
        await asyncio.gather(*(storage.put(trade(n)) for n in range(1, 51)))
    assert metrics.counter(catalog.STORAGE_QUEUE_OVERFLOWS)._value.get() > 0
    # StorageQueueFilling divides the depth by this gauge.
    assert metrics.gauge(catalog.STORAGE_QUEUE_CAPACITY)._value.get() == 2
    with StorageReader(tmp_path / "db.sqlite") as reader:
        assert reader.counts().trades == 50


async def test_disk_full_keeps_the_batch_and_retries(tmp_path: Path, metrics: Metrics) -> None:
    path = tmp_path / "observer.sqlite"
    async with Storage(path, StorageSettings(), metrics=metrics) as storage:
        await storage.put(trade(1))
        await storage.flush()
        connection = sqlite_connection(storage)
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk.
        connection.execute(f"PRAGMA max_page_count = {pages}")
        for cumulative in range(2, 2002):
            await storage.put(trade(cumulative))
        errors = metrics.counter(catalog.STORAGE_WRITE_ERRORS).labels("disk_full")
        for _ in range(200):
            if errors._value.get() >= 1:
                break
            await asyncio.sleep(0.02)
        assert errors._value.get() >= 1
        connection.execute("PRAGMA max_page_count = 1073741823")  # space again
        await asyncio.wait_for(storage.flush(), timeout=30)
    with StorageReader(path) as reader:
        assert reader.counts().trades == 2001


async def test_close_does_not_hang_on_a_database_that_stays_full(
    tmp_path: Path, metrics: Metrics
) -> None:
    storage = Storage(tmp_path / "full.sqlite", StorageSettings(), metrics=metrics)
    await storage.open()
    await storage.put(trade(1))
    await storage.flush()
    connection = sqlite_connection(storage)
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    for cumulative in range(2, 1002):
        await storage.put(trade(cumulative))
    await asyncio.wait_for(storage.close(flush_timeout_seconds=0.5), timeout=20)
    assert metrics.counter(catalog.STORAGE_WRITE_ERRORS).labels("disk_full")._value.get() >= 1


async def test_put_many_stores_in_order_in_multi_row_chunks(
    tmp_path: Path, metrics: Metrics
) -> None:
    path = tmp_path / "observer.sqlite"
    settings = StorageSettings(batch_size=5000)
    async with Storage(path, settings, metrics=metrics) as storage:
        # 1,000 trades (chunks of 512, 256, 128, 64, 32, 8) with 50 repeats among
        # them, and a gap stored pending then recovered in the same hand-off.
        trades = [trade(n) for n in range(1, 951)] + [trade(n) for n in range(1, 51)]
        await storage.put_many([gap(Recovery.PENDING), *trades, gap(Recovery.FULL)])
        await storage.flush()
    with StorageReader(path) as reader:
        assert [t.cumulative_volume for t in reader.trades("005930")] == list(range(1, 951))
        assert [g.recovery for g in reader.gaps()] == [Recovery.FULL]
    assert written(metrics, "trade") == 950 and written(metrics, "gap") == 1


async def test_a_full_batch_of_trades_is_one_statement_and_all_or_nothing(
    tmp_path: Path, metrics: Metrics
) -> None:
    path = tmp_path / "observer.sqlite"
    settings = StorageSettings(batch_size=1024)
    async with Storage(path, settings, metrics=metrics) as storage:
        await storage.put_many([trade(n) for n in range(1, 1025)])  # one full batch
        await storage.flush()
        await storage.put_many([trade(n) for n in range(513, 1537)])  # half of them known
        await storage.flush()
    with StorageReader(path) as reader:
        assert [t.cumulative_volume for t in reader.trades("005930")] == list(range(1, 1537))
    assert written(metrics, "trade") == 1536
