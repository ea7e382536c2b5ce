"""Both storage backends, SQLite and a real PostgreSQL, behind one ``Storage``.

Every test that takes ``store`` runs once per backend (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from metrics import catalog
from metrics.registry import Metrics
from observer.config import StorageSettings
from observer.gaps import GapWindow
from observer.market import KST
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track, Trade
from observer.storage import Storage, StorageError, StorageReader, is_postgres_url
from observer.storage_rows import SCHEMA_VERSION
from observer.storage_sql import SqliteBackend
from tests.postgres import PASSWORD, PostgresServer
from tests.store.answers import sim_snapshots

SETTINGS = StorageSettings(flush_interval_seconds=0.02)


def trade(cumulative: int, *, day: str = "20261204", symbol: str = "005930") -> Trade:
    return Trade(symbol, day, "101500", 71500, 1, cumulative, "ws")


def gap(recovery: Recovery, *, start: float = 1_796_000_000.0) -> Gap:
    return Gap(
        symbol="005930",
        track=Track.B,
        cause=GapCause.VOLUME_JUMP,
        start=start,
        end=start + 5,
        severity=Severity.LOW,
        missing_volume=7,
        recovery=recovery,
    )


async def test_records_are_stored_once_across_restarts(store: Path | str, metrics: Metrics) -> None:
    snapshots = sim_snapshots(20)
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        await storage.put_many([*snapshots, *(trade(n) for n in range(1, 101))])
        await storage.flush()
        assert storage.rows_written == {"snapshot": 20, "trade": 100, "gap": 0}
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        await storage.put_many([*snapshots, *(trade(n) for n in range(50, 151))])
        await storage.flush()
        assert storage.rows_written == {"snapshot": 0, "trade": 50, "gap": 0}
    with StorageReader(store) as reader:
        counts = reader.counts()
        assert (counts.snapshots, counts.trades) == (20, 150)
        assert [t.cumulative_volume for t in reader.trades("005930")] == list(range(1, 151))


async def test_every_field_of_a_snapshot_reads_back_exactly(
    store: Path | str, metrics: Metrics
) -> None:
    snapshots = sim_snapshots(30, symbols=3)
    odd = Snapshot(
        symbol="900001",
        collected_at=time.time(),
        price=1,
        cumulative_volume=2,
        fields={"stck_prpr": "1", "acml_vol": "2", "a_new_field": "값 ✓", "empty": ""},
    )
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        await storage.put_many([*snapshots, odd])
    with StorageReader(store) as reader:
        for symbol in {s.symbol for s in snapshots}:
            expected = [s for s in snapshots if s.symbol == symbol]
            stored = reader.snapshots(symbol)
            assert [dict(s.fields) for s in stored] == [dict(s.fields) for s in expected]
            assert [s.collected_at for s in stored] == [s.collected_at for s in expected]
        assert reader.snapshots("900001") == [odd]


async def test_a_gap_is_updated_in_place_and_keeps_its_window(
    store: Path | str, metrics: Metrics
) -> None:
    pending = GapWindow(
        gap=gap(Recovery.PENDING),
        business_date="20261204",
        after_cumulative=10,
        upto_cumulative=17,
        before_time="101500",
        since_time=None,
    )
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        await storage.put_many([pending, gap(Recovery.PENDING, start=1_796_000_100.0)])
        await storage.flush()
        assert await storage.pending_gaps() == [
            pending,
            GapWindow(gap(Recovery.PENDING, start=1_796_000_100.0), "", None, None, "", None),
        ]
        await storage.put(gap(Recovery.FULL))  # the same key: an update, not a new row
        await storage.flush()
        assert storage.rows_written["gap"] == 2
        assert [w.gap.start for w in await storage.pending_gaps()] == [1_796_000_100.0]
    with StorageReader(store) as reader:
        assert [g.recovery for g in reader.gaps()] == [Recovery.FULL, Recovery.PENDING]


async def test_last_trades_are_each_symbols_latest(store: Path | str, metrics: Metrics) -> None:
    records = [
        trade(5, day="20261203"),
        trade(2, day="20261204"),
        trade(9, day="20261204", symbol="000660"),
        trade(3, day="20261204", symbol="000660"),
    ]
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        await storage.put_many(records)
        await storage.flush()
        last = await storage.last_trades()
        assert last == {"005930": records[1], "000660": records[2]}
        assert await storage.last_trades(["000660", "999999"]) == {"000660": records[2]}


async def test_the_schema_version_is_recorded(store: Path | str, metrics: Metrics) -> None:
    async with Storage(store, SETTINGS, metrics=metrics) as storage:
        assert (await storage.stats()).schema_version == SCHEMA_VERSION
    with StorageReader(store) as reader:
        assert [tuple(row) for row in reader.rows("SELECT version FROM schema_version")] == [
            (SCHEMA_VERSION,)
        ]


async def test_a_database_of_a_newer_schema_is_refused_in_one_line(
    store: Path | str, metrics: Metrics
) -> None:
    async with Storage(store, SETTINGS, metrics=metrics):
        pass
    if is_postgres_url(store):
        with psycopg.connect(str(store), autocommit=True) as connection:
            connection.execute("UPDATE schema_version SET version = 99")
    else:
        with sqlite3.connect(store) as connection:
            connection.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError) as refused:
        async with Storage(store, SETTINGS, metrics=metrics):
            pass
    message = str(refused.value)
    assert "schema version 99, newer than this Observer's" in message
    assert "\n" not in message and PASSWORD not in message


def v1_database(path: Path) -> None:
    """A database as schema version 1 wrote it: JSON fields, gaps without window columns."""
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE snapshots (
                symbol TEXT NOT NULL, collected_at REAL NOT NULL, price INTEGER NOT NULL,
                cumulative_volume INTEGER NOT NULL, fields TEXT NOT NULL,
                PRIMARY KEY (symbol, collected_at)) WITHOUT ROWID;
            CREATE TABLE trades (
                symbol TEXT NOT NULL, business_date TEXT NOT NULL, time TEXT NOT NULL,
                price INTEGER NOT NULL, volume INTEGER NOT NULL,
                cumulative_volume INTEGER NOT NULL, source TEXT NOT NULL,
                PRIMARY KEY (symbol, business_date, cumulative_volume)) WITHOUT ROWID;
            CREATE TABLE gaps (
                symbol TEXT NOT NULL, track TEXT NOT NULL, cause TEXT NOT NULL,
                start REAL NOT NULL, "end" REAL NOT NULL, severity TEXT NOT NULL,
                missing_volume INTEGER, recovery TEXT NOT NULL,
                PRIMARY KEY (symbol, track, cause, start)) WITHOUT ROWID;
            INSERT INTO snapshots VALUES
                ('005930', 1796000000.5, 71500, 10, '{"acml_vol": "10", "stck_prpr": "71500"}');
            """
        )


async def test_a_version_1_sqlite_database_is_upgraded_in_place(
    tmp_path: Path, metrics: Metrics
) -> None:
    path = tmp_path / "observer.sqlite"
    v1_database(path)
    new = sim_snapshots(1)[0]
    async with Storage(path, SETTINGS, metrics=metrics) as storage:
        await storage.put(new)
    with StorageReader(path) as reader:
        assert reader.stats().schema_version == SCHEMA_VERSION
        old = reader.snapshots("005930")[0]
        assert dict(old.fields) == {"acml_vol": "10", "stck_prpr": "71500"}
        assert reader.snapshots(new.symbol)[-1] == new
        kinds = {row[0] for row in reader.rows("SELECT typeof(fields) FROM snapshots")}
        assert kinds == {"text", "blob"}  # old rows kept as they were, new ones compact


def kst_days_ago(days: int, *, now: float) -> datetime:
    return datetime.fromtimestamp(now, KST) - timedelta(days=days)


async def test_retention_keeps_the_last_30_days(
    store: Path | str, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows dated over 40 days: 30 days are kept (today included); PostgreSQL drops whole
    day partitions, SQLite deletes in bounded batches."""
    monkeypatch.setattr(SqliteBackend, "retention_rows_per_step", 7)
    now = time.time()
    records: list[Snapshot | Trade | Gap] = []
    for days in range(40):
        moment = kst_days_ago(days, now=now).replace(hour=10, minute=0, second=0)
        day = moment.strftime("%Y%m%d")
        for symbol in ("005930", "000660"):
            records.append(
                Snapshot(
                    symbol=symbol,
                    collected_at=moment.timestamp(),
                    price=1,
                    cumulative_volume=days,
                    fields={"stck_prpr": "1"},
                )
            )
            records.append(trade(1, day=day, symbol=symbol))
        records.append(gap(Recovery.FULL, start=moment.timestamp()))
    settings = SETTINGS.model_copy(update={"retention_days": 30, "gap_retention_days": 35})
    async with Storage(store, settings, metrics=metrics, clock=lambda: now) as storage:
        await storage.put_many(records)
        await storage.flush()
        deleted = await storage.apply_retention()
        assert deleted == {"snapshot": 20, "trade": 20, "gap": 5}
        assert await storage.apply_retention() == {"snapshot": 0, "trade": 0, "gap": 0}
        found = await storage.refresh_stats()
    rows_deleted = metrics.counter(catalog.STORAGE_ROWS_DELETED)
    assert rows_deleted.labels("snapshot")._value.get() == 20
    oldest = {t.table: t.oldest for t in found.tables}
    first_kept = kst_days_ago(29, now=now).replace(hour=0, minute=0, second=0, microsecond=0)
    assert oldest["trades"] is not None and oldest["trades"] >= first_kept.timestamp()
    assert oldest["snapshots"] is not None and oldest["snapshots"] >= first_kept.timestamp()
    age = metrics.gauge(catalog.STORAGE_OLDEST_ROW_AGE).labels("snapshot")._value.get()
    assert 28 * 86400 < age <= 30 * 86400
    assert metrics.gauge(catalog.STORAGE_DATABASE_BYTES)._value.get() > 0
    with StorageReader(store) as reader:
        counts = reader.counts()
        assert (counts.snapshots, counts.trades, counts.gaps) == (60, 60, 35)
        if is_postgres_url(store):
            partitions = {
                row[0]
                for row in reader.rows(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'snapshots\\_%' "
                    "AND relkind = 'r'"
                )
            }
            days_kept = {kst_days_ago(d, now=now).strftime("%Y%m%d") for d in range(30)}
            assert {p.removeprefix("snapshots_") for p in partitions} >= days_kept
            oldest_day = kst_days_ago(30, now=now).strftime("%Y%m%d")
            assert not any(p.removeprefix("snapshots_") <= oldest_day for p in partitions)


async def test_postgres_partitions_are_created_ahead(postgres_url: str, metrics: Metrics) -> None:
    async with Storage(postgres_url, SETTINGS, metrics=metrics) as storage:
        await storage.put(trade(1))
        await storage.flush()
    with StorageReader(postgres_url) as reader:
        names = {row[0] for row in reader.rows("SELECT relname FROM pg_class")}
    today = datetime.now(KST)
    for days in range(3):
        day = (today + timedelta(days=days)).strftime("%Y%m%d")
        assert f"snapshots_{day}" in names and f"trades_{day}" in names
    assert "trades_20261204" in names  # the day the batch needed


async def test_a_wrong_password_or_no_server_is_one_line_without_the_password(
    postgres_server: PostgresServer, metrics: Metrics
) -> None:
    wrong = postgres_server.url("postgres").replace(PASSWORD, "not-the-password-41")
    with pytest.raises(StorageError) as refused:
        async with Storage(wrong, SETTINGS, metrics=metrics):
            pass
    message = str(refused.value)
    assert "not-the-password-41" not in message and "\n" not in message
    assert "password authentication failed" in message
    nobody = f"postgresql://observer:{PASSWORD}@127.0.0.1:1/observer"
    with pytest.raises(StorageError) as unreachable:
        async with Storage(nobody, SETTINGS, metrics=metrics):
            pass
    assert PASSWORD not in str(unreachable.value)
    assert "postgresql://observer:***@127.0.0.1:1/observer" in str(unreachable.value)


async def test_the_password_argument_overrides_the_url(
    postgres_server: PostgresServer, postgres_url: str, metrics: Metrics
) -> None:
    without = postgres_url.replace(f":{PASSWORD}@", "@")
    async with Storage(without, SETTINGS, metrics=metrics, password=PASSWORD) as storage:
        await storage.put(trade(1))
    with StorageReader(without, password=PASSWORD) as reader:
        assert reader.counts().trades == 1


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_a_snapshot_takes_under_1000_bytes_on_disk(
    store: Path | str, metrics: Metrics
) -> None:
    """10,000 simulator answers: file size ÷ rows (WAL checkpointed) for SQLite,
    ``pg_total_relation_size`` of the partitions ÷ rows for PostgreSQL."""
    count = 10_000
    settings = SETTINGS.model_copy(update={"batch_size": 2000})
    async with Storage(store, settings, metrics=metrics) as storage:
        await storage.put_many(sim_snapshots(count))
    if is_postgres_url(store):
        with psycopg.connect(str(store), autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE snapshots")
        with StorageReader(store) as reader:
            stats = {t.table: t for t in reader.stats().tables}
            per_row = (stats["snapshots"].bytes or 0) / stats["snapshots"].rows
    else:
        with sqlite3.connect(store) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        per_row = await asyncio.to_thread(os.path.getsize, store) / count
    assert 50 < per_row <= 1000, per_row
