"""``Storage``: SQLite (WAL) behind a bounded queue, written in batches by one writer thread.

Records (``Snapshot``, ``Trade``, ``Gap``) are stored under their natural unique
key (``records.py``), so storing one twice — after a restart or a backfill —
keeps one row: ``INSERT OR IGNORE`` for snapshots and trades; a gap stored again
under the same key updates its end, severity, missing volume and recovery. A Track B
gap put as its ``GapWindow`` also keeps the window backfill needs (business date,
cumulative-volume bounds, times; columns added to an older database on open), so a
gap left ``pending`` by a killed process is read back whole (``pending_gaps``).
``observer_storage_rows_written_total{kind}`` counts new rows only.

A batch that fails to commit (disk full, locked database) is counted in
``observer_storage_write_errors_total``, kept, and retried with a capped
back-off: nothing put is dropped while the process lives. A producer that finds
the queue full waits (and ``observer_storage_queue_overflows_total`` counts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter import catalog
from exporter.registry import Metrics
from observer.config import StorageSettings
from observer.errors import ObserverError
from observer.gaps import GapWindow
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track, Trade

log = logging.getLogger(__name__)
Record = Snapshot | Trade | Gap | GapWindow
RETRY_INITIAL_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
CLOSE_FLUSH_SECONDS = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    symbol TEXT NOT NULL, collected_at REAL NOT NULL, price INTEGER NOT NULL,
    cumulative_volume INTEGER NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY (symbol, collected_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trades (
    symbol TEXT NOT NULL, business_date TEXT NOT NULL, time TEXT NOT NULL,
    price INTEGER NOT NULL, volume INTEGER NOT NULL, cumulative_volume INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (symbol, business_date, cumulative_volume)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps (
    symbol TEXT NOT NULL, track TEXT NOT NULL, cause TEXT NOT NULL, start REAL NOT NULL,
    "end" REAL NOT NULL, severity TEXT NOT NULL, missing_volume INTEGER, recovery TEXT NOT NULL,
    PRIMARY KEY (symbol, track, cause, start)
) WITHOUT ROWID;
"""

INSERT_SNAPSHOT = "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)"
INSERT_TRADE = "INSERT OR IGNORE INTO trades VALUES (?, ?, ?, ?, ?, ?, ?)"
GAP_COLUMNS = 'symbol, track, cause, start, "end", severity, missing_volume, recovery'
INSERT_GAP = f"INSERT OR IGNORE INTO gaps ({GAP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# Added after the first release (ALTER TABLE on open): NULL in gaps stored without them.
GAP_WINDOW_COLUMNS = {
    "business_date": "TEXT",
    "after_cumulative": "INTEGER",
    "upto_cumulative": "INTEGER",
    "before_time": "TEXT",
    "since_time": "TEXT",
}
UPDATE_GAP_WINDOW = (
    f"UPDATE gaps SET {', '.join(f'{name} = ?' for name in GAP_WINDOW_COLUMNS)} "
    "WHERE symbol = ? AND track = ? AND cause = ? AND start = ?"
)
PENDING_GAPS = (
    f"SELECT {GAP_COLUMNS}, {', '.join(GAP_WINDOW_COLUMNS)} FROM gaps "
    "WHERE track = ? AND recovery = ? ORDER BY start, symbol"
)
TRADE_COLUMNS = "symbol, business_date, time, price, volume, cumulative_volume, source"
NEXT_TRADE_SYMBOL = "SELECT MIN(symbol) FROM trades WHERE symbol > ?"
LAST_TRADE = (
    f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = ? "
    "ORDER BY business_date DESC, cumulative_volume DESC LIMIT 1"
)
UPDATE_GAP = (
    'UPDATE gaps SET "end" = ?, severity = ?, missing_volume = ?, recovery = ? '
    "WHERE symbol = ? AND track = ? AND cause = ? AND start = ?"
)


class StorageError(ObserverError):
    """The database cannot be opened or is not Observer's."""


def _kind(record: Record) -> str:
    if isinstance(record, Snapshot):
        return "snapshot"
    if isinstance(record, Trade):
        return "trade"
    return "gap"


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with the schema in place (used by the writer thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing committed
    connection.execute("PRAGMA busy_timeout=5000")
    connection.executescript(SCHEMA)
    have = {str(row[1]) for row in connection.execute("PRAGMA table_info(gaps)")}
    for name, kind in GAP_WINDOW_COLUMNS.items():
        if name not in have:  # a database from before the window was stored
            connection.execute(f"ALTER TABLE gaps ADD COLUMN {name} {kind}")
    return connection


def write_batch(connection: sqlite3.Connection, batch: Sequence[Record]) -> dict[str, int]:
    """Commit ``batch`` in one transaction; returns new rows by kind. Rolls back on error."""
    new = {kind: 0 for kind in catalog.ROW_KINDS}
    connection.execute("BEGIN")
    try:
        for record in batch:
            new[_kind(record)] += _write(connection, record)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return new


def _write(connection: sqlite3.Connection, record: Record) -> int:
    if isinstance(record, Snapshot):
        row: tuple[Any, ...] = (
            record.symbol,
            record.collected_at,
            record.price,
            record.cumulative_volume,
            json.dumps(dict(record.fields), ensure_ascii=False, sort_keys=True),
        )
        return connection.execute(INSERT_SNAPSHOT, row).rowcount
    if isinstance(record, Trade):
        row = (
            record.symbol,
            record.business_date,
            record.time,
            record.price,
            record.volume,
            record.cumulative_volume,
            record.source,
        )
        return connection.execute(INSERT_TRADE, row).rowcount
    if isinstance(record, GapWindow):
        inserted = _write(connection, record.gap)
        bounds = (
            record.business_date,
            record.after_cumulative,
            record.upto_cumulative,
            record.before_time,
            record.since_time,
        )
        gap = record.gap
        key = (gap.symbol, gap.track.value, gap.cause.value, gap.start)
        connection.execute(UPDATE_GAP_WINDOW, (*bounds, *key))
        return inserted
    key = (record.symbol, record.track.value, record.cause.value, record.start)
    values = (record.end, record.severity.value, record.missing_volume, record.recovery.value)
    inserted = connection.execute(INSERT_GAP, (*key, *values)).rowcount
    if not inserted:
        connection.execute(UPDATE_GAP, (*values, *key))
    return inserted


def _trade(row: Sequence[Any]) -> Trade:
    return Trade(
        symbol=row[0],
        business_date=row[1],
        time=row[2],
        price=row[3],
        volume=row[4],
        cumulative_volume=row[5],
        source=row[6],
    )


def _gap(row: Sequence[Any]) -> Gap:
    return Gap(
        symbol=row[0],
        track=Track(row[1]),
        cause=GapCause(row[2]),
        start=row[3],
        end=row[4],
        severity=Severity(row[5]),
        missing_volume=row[6],
        recovery=Recovery(row[7]),
    )


def pending_gaps(connection: sqlite3.Connection) -> list[GapWindow]:
    """Every Track B gap still ``pending``, with its stored window, oldest first.

    A gap stored without a window (by a version that did not keep one) comes
    back without bounds (no business date, no ``upto``): backfill says ``none``.
    """
    return [
        GapWindow(
            gap=_gap(row),
            business_date=row[8] or "",
            after_cumulative=row[9],
            upto_cumulative=row[10],
            before_time=row[11] or "",
            since_time=row[12],
        )
        for row in connection.execute(PENDING_GAPS, (Track.B.value, Recovery.PENDING.value))
    ]


def last_trades(
    connection: sqlite3.Connection, symbols: Iterable[str] | None = None
) -> dict[str, Trade]:
    """Each symbol's latest stored trade (latest business day, highest ``ACML_VOL``).

    ``symbols`` None means every symbol with a trade. Two primary-key lookups
    per symbol, never a table scan: cheap at start on a large database.
    """
    if symbols is None:
        symbols = []
        row = connection.execute(NEXT_TRADE_SYMBOL, ("",)).fetchone()
        while row is not None and row[0] is not None:
            symbols.append(str(row[0]))
            row = connection.execute(NEXT_TRADE_SYMBOL, (row[0],)).fetchone()
    found: dict[str, Trade] = {}
    for symbol in symbols:
        last = connection.execute(LAST_TRADE, (symbol,)).fetchone()
        if last is not None:
            found[symbol] = _trade(last)
    return found


class Storage:
    """``async with Storage(path, settings, metrics=m) as storage: await storage.put(record)``.

    ``put`` waits while the queue is full; ``flush`` returns once everything put
    so far is committed; leaving the ``async with`` flushes and closes.
    """

    def __init__(self, path: Path, settings: StorageSettings, *, metrics: Metrics) -> None:
        self.path = path
        self._settings = settings
        self._metrics = metrics
        self._queue: asyncio.Queue[Record] = asyncio.Queue(maxsize=settings.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage-writer")
        self._connection: sqlite3.Connection | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.rows_written = {kind: 0 for kind in catalog.ROW_KINDS}

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, connect, self.path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        self._consumer = asyncio.create_task(self._consume(), name="storage-consumer")
        log.info("storage open path=%s", self.path)

    async def put(self, record: Record) -> None:
        """Queue ``record`` for writing; waits (and counts an overflow) when the queue is full."""
        if self._queue.full():
            self._metrics.counter(catalog.STORAGE_QUEUE_OVERFLOWS).inc()
        await self._queue.put(record)
        self._metrics.gauge(catalog.STORAGE_QUEUE_DEPTH).set(self._queue.qsize())

    async def flush(self) -> None:
        """Wait until every record put so far is committed."""
        await self._queue.join()

    async def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        """Each symbol's latest committed trade (all symbols when None), read off the loop.

        Runs on the writer thread, between batches: it sees every committed row.
        """
        connection = self._connection
        if connection is None:
            raise StorageError("storage is not open")
        wanted = None if symbols is None else list(symbols)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, last_trades, connection, wanted)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the last trades: {exc}") from exc

    async def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps stored ``pending``, with their windows, read off the loop."""
        connection = self._connection
        if connection is None:
            raise StorageError("storage is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, pending_gaps, connection)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the pending gaps: {exc}") from exc

    async def close(self, flush_timeout_seconds: float = CLOSE_FLUSH_SECONDS) -> None:
        """Flush, stop the consumer, close the connection and the writer thread.

        A database that still refuses writes after ``flush_timeout_seconds`` (a full
        disk at shutdown) does not hold the process: the records left are logged as
        lost, by count, and the close goes on.
        """
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self.flush(), flush_timeout_seconds)
            except TimeoutError:
                log.error("storage closed with unwritten records count=%d", self._queue.qsize())
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=True)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self._connection
        assert connection is not None, "open() first"
        while True:
            batch = await self._next_batch()
            delay = RETRY_INITIAL_SECONDS
            while True:
                try:
                    new = await loop.run_in_executor(self._executor, write_batch, connection, batch)
                    break
                except sqlite3.Error as exc:
                    self._metrics.counter(catalog.STORAGE_WRITE_ERRORS).inc()
                    log.error("storage write failed rows=%d reason=%s", len(batch), exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
            for kind, count in new.items():
                if count:
                    self.rows_written[kind] += count
                    self._metrics.counter(catalog.STORAGE_ROWS_WRITTEN).labels(kind).inc(count)
            for _ in batch:
                self._queue.task_done()
            self._metrics.gauge(catalog.STORAGE_QUEUE_DEPTH).set(self._queue.qsize())

    async def _next_batch(self) -> list[Record]:
        """At least one record; more as they come, up to batch_size or flush_interval_seconds."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.flush_interval_seconds
        while len(batch) < self._settings.batch_size:
            while not self._queue.empty() and len(batch) < self._settings.batch_size:
                batch.append(self._queue.get_nowait())
            remaining = deadline - loop.time()
            if len(batch) >= self._settings.batch_size or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch


@dataclass(frozen=True, slots=True)
class StoredCounts:
    snapshots: int
    trades: int
    gaps: int


class StorageReader:
    """Read helpers (tests, tools): a separate read-only connection to the database file."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> StorageReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def counts(self) -> StoredCounts:
        one = self._scalar
        return StoredCounts(
            one("SELECT COUNT(*) FROM snapshots"),
            one("SELECT COUNT(*) FROM trades"),
            one("SELECT COUNT(*) FROM gaps"),
        )

    def snapshot_symbols(self) -> dict[str, int]:
        rows = self._connection.execute("SELECT symbol, COUNT(*) FROM snapshots GROUP BY symbol")
        return {str(symbol): int(count) for symbol, count in rows}

    def trades(self, symbol: str) -> list[Trade]:
        rows = self._connection.execute(
            f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = ? "
            "ORDER BY business_date, cumulative_volume",
            (symbol,),
        )
        return [_trade(r) for r in rows]

    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        """Each symbol's latest stored trade (``observer.storage.last_trades``)."""
        return last_trades(self._connection, symbols)

    def gaps(self, symbol: str | None = None) -> list[Gap]:
        rows = self._connection.execute(
            f"SELECT {GAP_COLUMNS} FROM gaps"
            + (" WHERE symbol = ?" if symbol else "")
            + " ORDER BY start, symbol",
            (symbol,) if symbol else (),
        )
        return [_gap(r) for r in rows]

    def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps still ``pending``, with their windows."""
        return pending_gaps(self._connection)

    def _scalar(self, query: str) -> int:
        row = self._connection.execute(query).fetchone()
        return int(row[0]) if row else 0

    def rows(self, query: str, parameters: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Any read query (tests that need more than the helpers)."""
        yield from self._connection.execute(query, parameters)
