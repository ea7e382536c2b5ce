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
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metrics import catalog
from metrics.registry import Metrics
from observer.config import StorageSettings
from observer.gaps import GapWindow
from observer.records import Gap, Trade
from observer.storage_sql import (
    GAP_COLUMNS,
    TRADE_COLUMNS,
    Record,
    StorageError,
    connect,
    gap_from_row,
    last_alive,
    last_trades,
    mark_alive,
    pending_gaps,
    trade_from_row,
    write_batch,
)

log = logging.getLogger(__name__)
RETRY_INITIAL_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
CLOSE_FLUSH_SECONDS = 30.0
ALIVE_EVERY_SECONDS = 1.0  # the liveness mark goes with a batch at most this often


def _write_marked(
    connection: sqlite3.Connection, batch: Sequence[Record], alive_at: float | None
) -> dict[str, int]:
    """``write_batch``, then the liveness mark when ``alive_at`` is given (one thread hop)."""
    new = write_batch(connection, batch)
    if alive_at is not None:
        mark_alive(connection, alive_at)
    return new


__all__ = ["Record", "Storage", "StorageError", "StorageReader", "StoredCounts"]


class Storage:
    """``async with Storage(path, settings, metrics=m) as storage: await storage.put(record)``.

    ``put`` and ``put_many`` wait while the queue is full; ``flush`` returns once
    everything put so far is committed; leaving the ``async with`` flushes and closes.

    The queue is a deque the writer empties a batch at a time: a producer hands
    over a whole frame's records in one ``put_many`` (Track B calls it once per
    WebSocket frame), and the writer is woken only when it waits for a first
    record, when a batch is full, or when a flush asks for what is there.
    """

    def __init__(self, path: Path, settings: StorageSettings, *, metrics: Metrics) -> None:
        self.path = path
        self._settings = settings
        self._metrics = metrics
        self._waiting: deque[Record] = deque()  # put, not yet taken by the writer
        self._put = 0  # records put so far
        self._committed = 0  # records committed (or given up at close) so far
        self._flush_upto = 0  # the highest _put a flush waits for
        self._arrived = asyncio.Event()  # wakes the writer (see put_many)
        self._progress = asyncio.Event()  # replaced on every take and commit (see _notify)
        # The depth is set when the writer takes a batch or commits one and before
        # every exposition, not on every put (Track B puts once per frame).
        self._depth = metrics.gauge(catalog.STORAGE_QUEUE_DEPTH)
        metrics.gauge(catalog.STORAGE_QUEUE_CAPACITY).set(settings.queue_size)
        metrics.on_collect(self._update_depth)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage-writer")
        self._connection: sqlite3.Connection | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.rows_written = {kind: 0 for kind in catalog.ROW_KINDS}
        # When the process that wrote here before was last known alive (read at open,
        # before this one writes): where a restart's unwatched stretch began.
        self.previous_alive_at: float | None = None
        self._marked_alive_at = -math.inf
        self._clock = time.time

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, connect, self.path)
            self.previous_alive_at = await loop.run_in_executor(
                self._executor, last_alive, self._connection
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        self._consumer = asyncio.create_task(self._consume(), name="storage-consumer")
        log.info("storage open path=%s", self.path)

    async def put(self, record: Record) -> None:
        """Queue ``record`` for writing; waits (and counts an overflow) when the queue is full."""
        await self.put_many((record,))

    async def put_many(self, records: Sequence[Record]) -> None:
        """Queue ``records``, in order, for writing: ``put`` for each, in one hand-off.

        Waits (and counts one overflow) while the queue holds ``queue_size``
        records; once there is room all of ``records`` go in, so the queue may
        hold one hand-off more than ``queue_size``.
        """
        waiting = self._waiting
        if len(waiting) >= self._settings.queue_size:
            self._metrics.counter(catalog.STORAGE_QUEUE_OVERFLOWS).inc()
            while len(waiting) >= self._settings.queue_size:
                await self._progress.wait()
        before = len(waiting)
        waiting.extend(records)
        self._put += len(records)
        batch_size = self._settings.batch_size
        if before == 0 or before < batch_size <= len(waiting):
            self._arrived.set()  # the writer waits for a first record or for a full batch

    async def flush(self) -> None:
        """Wait until every record put so far is committed (the writer does not wait to
        fill its batch)."""
        target = self._put
        if self._committed >= target:
            return
        self._flush_upto = max(self._flush_upto, target)
        self._arrived.set()
        while self._committed < target:
            await self._progress.wait()

    def _update_depth(self) -> None:
        if self._consumer is not None:  # open: a closed storage leaves the gauge to the next
            self._depth.set(len(self._waiting))

    def _notify(self) -> None:
        """Wake whoever waits for room or for a commit (they check again)."""
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

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
                log.error(
                    "storage closed with unwritten records count=%d", self._put - self._committed
                )
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            loop = asyncio.get_running_loop()
            try:  # a clean stop is the exact end of what this process watched
                await loop.run_in_executor(self._executor, mark_alive, connection, self._clock())
            except sqlite3.Error as exc:
                log.warning("storage liveness not recorded at close reason=%s", exc)
            await loop.run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=True)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self._connection
        assert connection is not None, "open() first"
        while True:
            batch = await self._next_batch()
            delay = RETRY_INITIAL_SECONDS
            while True:
                now = self._clock()
                alive_at = now if now - self._marked_alive_at >= ALIVE_EVERY_SECONDS else None
                try:
                    new = await loop.run_in_executor(
                        self._executor, _write_marked, connection, batch, alive_at
                    )
                    if alive_at is not None:
                        self._marked_alive_at = alive_at
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
            self._committed += len(batch)
            self._depth.set(len(self._waiting))
            self._notify()

    async def _next_batch(self) -> list[Record]:
        """At least one record; more as they come, up to batch_size or flush_interval_seconds
        after the first (at once when a flush waits for the records already there)."""
        waiting = self._waiting
        while not waiting:
            self._arrived.clear()
            await self._arrived.wait()
        batch_size = self._settings.batch_size
        if len(waiting) < batch_size and self._flush_upto <= self._committed:
            deadline = asyncio.get_running_loop().time() + self._settings.flush_interval_seconds
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    while len(waiting) < batch_size and self._flush_upto <= self._committed:
                        self._arrived.clear()
                        await self._arrived.wait()
        if len(waiting) <= batch_size:
            batch = list(waiting)
            waiting.clear()
        else:
            batch = [waiting.popleft() for _ in range(batch_size)]
        self._depth.set(len(waiting))
        self._notify()  # room for producers that wait
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
        return [trade_from_row(r) for r in rows]

    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        """Each symbol's latest stored trade (``observer.storage_sql.last_trades``)."""
        return last_trades(self._connection, symbols)

    def gaps(self, symbol: str | None = None) -> list[Gap]:
        rows = self._connection.execute(
            f"SELECT {GAP_COLUMNS} FROM gaps"
            + (" WHERE symbol = ?" if symbol else "")
            + " ORDER BY start, symbol",
            (symbol,) if symbol else (),
        )
        return [gap_from_row(r) for r in rows]

    def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps still ``pending``, with their windows."""
        return pending_gaps(self._connection)

    def _scalar(self, query: str) -> int:
        row = self._connection.execute(query).fetchone()
        return int(row[0]) if row else 0

    def rows(self, query: str, parameters: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Any read query (tests that need more than the helpers)."""
        yield from self._connection.execute(query, parameters)
