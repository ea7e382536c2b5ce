"""``observer db``: stats, migrate, and copy from the embedded store to PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from metrics.registry import Metrics
from observer.cli import main
from observer.config import StorageSettings
from observer.gaps import GapWindow
from observer.records import Gap, GapCause, Recovery, Severity, Track, Trade
from observer.storage import Storage, StorageReader, open_backend
from observer.storage_copy import copy_store
from tests.postgres import PASSWORD
from tests.store.answers import sim_snapshots
from tests.store.test_backends import v1_database

SETTINGS = StorageSettings(flush_interval_seconds=0.02)


def gap(start: float, recovery: Recovery) -> Gap:
    return Gap(
        symbol="005930",
        track=Track.B,
        cause=GapCause.SESSION_DROP,
        start=start,
        end=start + 3,
        severity=Severity.LOW,
        missing_volume=4,
        recovery=recovery,
    )


async def filled_sqlite(path: Path, metrics: Metrics) -> None:
    trades = [
        Trade(symbol, "20261204", "101500", 100, 1, n)
        for symbol in ("000660", "005930")
        for n in range(1, 51)
    ]
    window = GapWindow(gap(1_796_000_000.0, Recovery.PENDING), "20261204", 3, 7, "101500", None)
    async with Storage(path, SETTINGS, metrics=metrics) as storage:
        await storage.put_many([*sim_snapshots(120, symbols=7), *trades, window])
        await storage.put(gap(1_796_000_100.0, Recovery.FULL))


async def test_copy_moves_an_embedded_store_to_postgres_once(
    tmp_path: Path, postgres_url: str, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "observer.sqlite"
    await filled_sqlite(source, metrics)
    assert main(["db", "copy", "--from", str(source), "--to", postgres_url]) == 0
    first = capsys.readouterr().out
    assert "snapshots  read        120  new        120" in first
    assert "trades     read        100  new        100" in first
    assert "gaps       read          2  new          2" in first
    assert PASSWORD not in first and "observer:***@" in first
    with StorageReader(source) as old, StorageReader(postgres_url) as new:
        assert old.counts() == new.counts()
        for symbol in old.snapshot_symbols():
            assert old.snapshots(symbol) == new.snapshots(symbol)
        assert old.trades("005930") == new.trades("005930")
        assert old.gaps() == new.gaps()
        assert old.pending_gaps() == new.pending_gaps()
    assert main(["db", "copy", "--from", str(source), "--to", postgres_url]) == 0
    second = capsys.readouterr().out
    assert "snapshots  read        120  new          0  already there        120" in second
    assert "trades     read        100  new          0" in second


async def test_copy_pages_through_a_table_in_key_order(tmp_path: Path, metrics: Metrics) -> None:
    source, destination = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    await filled_sqlite(source, metrics)
    backend = open_backend(destination)
    seen: list[tuple[str, int, int]] = []
    with StorageReader(source) as reader:
        copied = copy_store(reader, backend, page_rows=7, progress=lambda *p: seen.append(p))
    backend.close()
    assert [(c.table, c.read, c.new) for c in copied] == [
        ("snapshots", 120, 120),
        ("trades", 100, 100),
        ("gaps", 2, 2),
    ]
    assert [p for p in seen if p[0] == "trades"][-1] == ("trades", 100, 100)
    assert len([p for p in seen if p[0] == "trades"]) == 15  # 100 rows, 7 a page


async def test_stats_names_each_table_without_the_password(
    postgres_url: str, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Storage(postgres_url, SETTINGS, metrics=metrics) as storage:
        await storage.put_many(sim_snapshots(10))
    assert main(["db", "stats", "--store", postgres_url]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert "backend postgresql schema_version 2" in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:]}
    assert rows == {"snapshots": "10", "trades": "0", "gaps": "0"}


def test_migrate_upgrades_a_version_1_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.sqlite"
    v1_database(path)
    assert main(["db", "migrate", "--store", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: schema version 1 -> 2"
    assert main(["db", "migrate", "--store", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: schema version 2, nothing to do"
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


def test_bad_stores_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite"
    assert main(["db", "stats", "--store", str(missing)]) == 2
    assert main(["db", "copy", "--from", str(missing), "--to", str(tmp_path / "b")]) == 2
    assert main(["db", "copy", "--from", "x.sqlite", "--to", "x.sqlite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert all(line.startswith("observer db: configuration error") for line in err)
    assert not missing.exists()
