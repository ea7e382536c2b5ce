"""Storage: rows written per second and bytes on disk per snapshot, SQLite and PostgreSQL.

Through the real ``Storage`` (bounded queue, writer thread, idempotent batches):

- **trades**: Track B's case, ``--trades`` trades put a frame (4 records) at a time;
- **snapshots**: Track A's case, ``--snapshots`` simulator answers (every field) put
  one at a time; then the bytes on disk per snapshot: the SQLite file with its WAL
  checkpointed ÷ rows, or ``pg_total_relation_size`` of the partitions ÷ rows.

PostgreSQL is a throwaway local cluster (``tests/postgres.py``: initdb, loopback,
``fsync=off`` as in the tests) unless ``--postgres-url`` names one.

    .venv/bin/python bench/bench_storage.py [--trades 200000] [--snapshots 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from metrics.registry import Metrics, new_registry
from observer.config import StorageSettings
from observer.records import Trade
from observer.storage import Storage, StorageReader
from tests.postgres import PostgresServer
from tests.store.answers import sim_snapshots

SYMBOLS = [f"{100000 + i:06d}" for i in range(41)]


async def write_trades(target: Path | str, count: int) -> float:
    trades = [
        Trade(SYMBOLS[i % 41], "20261204", "101500", 71500, 1, i // 41 + 1, "ws")
        for i in range(count)
    ]
    async with Storage(
        target, StorageSettings(), metrics=Metrics(new_registry(), version="b")
    ) as storage:
        started = time.perf_counter()
        for i in range(0, count, 4):
            await storage.put_many(trades[i : i + 4])
        await storage.flush()
        return count / (time.perf_counter() - started)


async def write_snapshots(target: Path | str, count: int) -> float:
    snapshots = sim_snapshots(count)
    async with Storage(
        target, StorageSettings(), metrics=Metrics(new_registry(), version="b")
    ) as storage:
        started = time.perf_counter()
        for snapshot in snapshots:
            await storage.put(snapshot)
        await storage.flush()
        return count / (time.perf_counter() - started)


def sqlite_bytes_per_snapshot(path: Path, count: int) -> float:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path) / count


def postgres_bytes_per_snapshot(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE snapshots")
    with StorageReader(url) as reader:
        table = {t.table: t for t in reader.stats().tables}["snapshots"]
    return (table.bytes or 0) / table.rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--snapshots", type=int, default=20_000)
    parser.add_argument("--postgres-url", help="an empty database (default: a local cluster)")
    args = parser.parse_args()
    server = None
    if args.postgres_url:
        trades_url = snapshots_url = args.postgres_url
    else:
        server = PostgresServer()
        server.start()
        trades_url = server.create_database("bench_trades")
        snapshots_url = server.create_database("bench_snapshots")
    try:
        with tempfile.TemporaryDirectory() as folder:
            trades_db, snapshots_db = Path(folder) / "t.sqlite", Path(folder) / "s.sqlite"
            rows = {
                "sqlite": (
                    await write_trades(trades_db, args.trades),
                    await write_snapshots(snapshots_db, args.snapshots),
                    sqlite_bytes_per_snapshot(snapshots_db, args.snapshots),
                ),
                "postgresql": (
                    await write_trades(trades_url, args.trades),
                    await write_snapshots(snapshots_url, args.snapshots),
                    postgres_bytes_per_snapshot(snapshots_url),
                ),
            }
    finally:
        if server is not None:
            server.destroy()
    print(f"trades {args.trades:,}, snapshots {args.snapshots:,}")
    print("| backend | trades/s | snapshots/s | bytes per snapshot |")
    print("|---|---|---|---|")
    for backend, (trades, snapshots, size) in rows.items():
        print(f"| {backend} | {trades:,.0f} | {snapshots:,.0f} | {size:,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
