"""A full disk is reported as itself: SQLite's own rollback is not followed by a second one."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from metrics import catalog
from metrics.registry import Metrics
from observer.config import StorageSettings
from observer.records import Trade
from observer.storage import Storage
from observer.storage_sql import connect, write_batch
from tests.core.storage_util import sqlite_connection


def trades(count: int, *, first: int = 1) -> list[Trade]:
    return [
        Trade(
            symbol="005930",
            business_date="20261124",
            time="101500",
            price=71500,
            volume=10,
            cumulative_volume=cumulative,
            source="ws",
        )
        for cumulative in range(first, first + count)
    ]


def fill_up(connection: sqlite3.Connection) -> None:
    """Make the database "full": SQLITE_FULL as on a full disk, via ``max_page_count``."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")


def test_write_batch_on_a_full_database_raises_the_real_cause(tmp_path: Path) -> None:
    connection = connect(tmp_path / "full.sqlite")
    write_batch(connection, trades(1))
    fill_up(connection)
    with pytest.raises(sqlite3.OperationalError) as caught:
        write_batch(connection, trades(2000, first=2))
    assert "full" in str(caught.value)
    assert "rollback" not in str(caught.value)
    assert not connection.in_transaction
    # The connection is still usable: the next batch, with space again, commits.
    connection.execute("PRAGMA max_page_count = 1073741823")
    assert write_batch(connection, trades(5, first=2))["trade"] == 5
    connection.close()


def test_an_error_inside_an_open_transaction_is_still_rolled_back(tmp_path: Path) -> None:
    connection = connect(tmp_path / "open.sqlite")
    connection.execute("DROP TABLE trades")  # the insert fails, SQLite keeps the transaction
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        write_batch(connection, trades(1))
    assert not connection.in_transaction
    connection.close()


async def test_storage_logs_the_disk_full_cause(
    tmp_path: Path, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="observer.storage")
    async with Storage(tmp_path / "observer.sqlite", StorageSettings(), metrics=metrics) as storage:
        await storage.put(trades(1)[0])
        await storage.flush()
        fill_up(sqlite_connection(storage))
        for record in trades(2000, first=2):
            await storage.put(record)
        errors = metrics.counter(catalog.STORAGE_WRITE_ERRORS).labels("disk_full")
        for _ in range(250):
            if errors._value.get() >= 1:
                break
            await asyncio.sleep(0.02)
        sqlite_connection(storage).execute("PRAGMA max_page_count = 1073741823")
        await asyncio.wait_for(storage.flush(), timeout=30)
    failures = [r.getMessage() for r in caplog.records if "storage write failed" in r.getMessage()]
    assert failures
    assert all("database or disk is full" in line for line in failures), failures
    assert not any("cannot rollback" in line for line in failures)
