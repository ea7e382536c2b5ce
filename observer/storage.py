"""``Storage``: a database behind a bounded queue, written in batches by one writer thread.

The database is a backend (``storage_rows.Backend``): SQLite (``storage_sql``, the
embedded default: a file) or PostgreSQL (``storage_pg``: a ``postgresql://`` URL,
shared by several Observers). Records (``Snapshot``, ``Trade``, ``Gap``) are stored
under their natural unique key (``records.py``), so storing one twice — after a
restart or a backfill — keeps one row; a gap stored again under the same key
updates its end, severity, missing volume and recovery. A Track B gap put as its
``GapWindow`` also keeps the window backfill needs, so a gap left ``pending`` by a
killed process is read back whole (``pending_gaps``).
``observer_storage_rows_written_total{kind}`` counts new rows only.

A batch that fails to commit (disk full, locked database, server unreachable or
restarted) is counted in ``observer_storage_write_errors_total{reason}``, kept,
and retried with a capped back-off: nothing put is dropped while the process
lives, and ``observer_storage_available`` is 0 until a batch commits again. A
producer that finds the queue full waits (``observer_storage_queue_overflows_total``).

Retention runs on the same writer thread, a bounded step at a time between
batches: rows older than ``storage.retention_days`` (snapshots, trades) and
``storage.gap_retention_days`` (gaps) go, counted in
``observer_storage_rows_deleted_total{kind}``; the database's size and the age of
its oldest rows are gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from metrics import catalog
from metrics.registry import Metrics
from observer.config import StorageSettings
from observer.gaps import GapWindow
from observer.records import Gap, Snapshot, Trade
from observer.storage_rows import (
    GAP_COLUMNS,
    SNAPSHOT_COLUMNS,
    TABLE_KIND,
    TRADE_COLUMNS,
    Backend,
    Record,
    StorageError,
    StoreFailure,
    StoreStats,
    cutoffs,
    gap_from_row,
    snapshot_from_row,
    trade_from_row,
)

log = logging.getLogger(__name__)
RETRY_INITIAL_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
CLOSE_FLUSH_SECONDS = 30.0
ALIVE_EVERY_SECONDS = 1.0  # the liveness mark goes with a batch at most this often
STATS_INTERVAL_SECONDS = 300.0
FIRST_RETENTION_DELAY_SECONDS = 60.0
__all__ = [
    "Record",
    "Storage",
    "StorageError",
    "StorageReader",
    "StoredCounts",
    "describe",
    "is_postgres_url",
    "open_backend",
]
_T = TypeVar("_T")


def is_postgres_url(target: Path | str) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and urlsplit(target).scheme in ("postgresql", "postgres")


def describe(target: Path | str) -> str:
    """``target`` for a log line or a message: a URL without its password, or the path."""
    if is_postgres_url(target):
        from observer.storage_pg import redact

        return redact(str(target))
    return str(target)


def open_backend(target: Path | str, *, password: str | None = None) -> Backend:
    """The backend of ``target`` (blocking: it connects and migrates the schema).

    Raises ``StorageError`` (one line, no credential) when it cannot be opened.
    """
    if is_postgres_url(target):
        from observer.storage_pg import PostgresBackend  # psycopg only when it is used

        return PostgresBackend(str(target), password=password)
    from observer.storage_sql import SqliteBackend

    return SqliteBackend(Path(target))


class Storage:
    """``async with Storage(target, settings, metrics=m) as storage: await storage.put(record)``.

    ``target`` is a SQLite file (a ``Path``) or a ``postgresql://`` URL (``password``
    overrides one in the URL).

    ``put`` and ``put_many`` wait while the queue is full; ``flush`` returns once
    everything put so far is committed; leaving the ``async with`` flushes and closes.

    The queue is a deque the writer empties a batch at a time: a producer hands
    over a whole frame's records in one ``put_many`` (Track B calls it once per
    WebSocket frame), and the writer is woken only when it waits for a first
    record, when a batch is full, or when a flush asks for what is there.
    """

    def __init__(
        self,
        target: Path | str,
        settings: StorageSettings,
        *,
        metrics: Metrics,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self._password = password
        self._clock = clock
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
        self._backend: Backend | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._available = metrics.gauge(catalog.STORAGE_AVAILABLE)
        self._oldest: dict[str, float | None] = dict.fromkeys(catalog.ROW_KINDS)
        metrics.on_collect(self._update_ages)
        self.rows_written = {kind: 0 for kind in catalog.ROW_KINDS}
        self.rows_deleted = {kind: 0 for kind in catalog.ROW_KINDS}
        # When the process that wrote here before was last known alive (read at open,
        # before this one writes): where a restart's unwatched stretch began.
        self.previous_alive_at: float | None = None
        self._marked_alive_at = -math.inf

    @property
    def queue_depth(self) -> int:
        """Records put and not yet taken by the writer."""
        return len(self._waiting)

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise StorageError("storage is not open")
        return self._backend

    async def open(self) -> None:
        """Connect and migrate (raises ``StorageError``), then start writing and housekeeping."""
        loop = asyncio.get_running_loop()
        target, password = self.target, self._password
        self._backend = backend = await loop.run_in_executor(
            self._executor, lambda: open_backend(target, password=password)
        )
        try:
            self.previous_alive_at = await self._run(backend.last_alive)
        except StoreFailure as exc:
            await self._run(backend.close)
            self._backend = None
            raise StorageError(f"cannot read the database {describe(target)}: {exc}") from exc
        self._available.set(1)
        self._consumer = asyncio.create_task(self._consume(), name="storage-consumer")
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="storage-retention")
        log.info("storage open backend=%s target=%s", self._backend.name, describe(target))

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
        backend = self.backend
        wanted = None if symbols is None else list(symbols)
        try:
            return await self._run(lambda: backend.last_trades(wanted))
        except StoreFailure as exc:
            raise StorageError(f"cannot read the last trades: {exc}") from exc

    async def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps stored ``pending``, with their windows, read off the loop."""
        backend = self.backend
        try:
            return await self._run(backend.pending_gaps)
        except StoreFailure as exc:
            raise StorageError(f"cannot read the pending gaps: {exc}") from exc

    async def stats(self, *, exact: bool = True) -> StoreStats:
        """Rows, bytes and age per table (``Backend.stats``), read on the writer thread."""
        backend = self.backend
        try:
            return await self._run(lambda: backend.stats(exact=exact))
        except StoreFailure as exc:
            raise StorageError(f"cannot read the database's statistics: {exc}") from exc

    async def apply_retention(self) -> dict[str, int]:
        """One whole retention pass, in bounded steps between write batches; rows deleted."""
        settings = self._settings
        limits = cutoffs(self._clock(), settings.retention_days, settings.gap_retention_days)
        backend = self.backend
        total = dict.fromkeys(catalog.ROW_KINDS, 0)
        finished = False
        while not finished:
            deleted, finished = await self._run(lambda: backend.retention_step(limits))
            for kind, count in deleted.items():
                if count:
                    total[kind] += count
                    self.rows_deleted[kind] += count
                    self._metrics.counter(catalog.STORAGE_ROWS_DELETED).labels(kind).inc(count)
        if any(total.values()):
            log.info(
                "storage retention deleted %s",
                " ".join(f"{kind}={count}" for kind, count in total.items()),
            )
        return total

    async def refresh_stats(self) -> StoreStats:
        """Update the database-size and oldest-row gauges from ``stats(exact=False)``."""
        found = await self.stats(exact=False)
        self._metrics.gauge(catalog.STORAGE_DATABASE_BYTES).set(found.database_bytes)
        for table in found.tables:
            self._oldest[TABLE_KIND[table.table]] = table.oldest
        self._update_ages()
        return found

    def _update_ages(self) -> None:
        now = self._clock()
        gauge = self._metrics.gauge(catalog.STORAGE_OLDEST_ROW_AGE)
        for kind, oldest in self._oldest.items():
            gauge.labels(kind).set(0.0 if oldest is None else max(0.0, now - oldest))

    async def _housekeeping(self) -> None:
        """Retention a minute after opening and every ``retention_interval_seconds``, the
        gauges every few minutes; a failure is logged and tried again at the next turn."""
        settings = self._settings
        # The first pass a minute after opening, when the start-up reads are done.
        next_retention = asyncio.get_running_loop().time() + FIRST_RETENTION_DELAY_SECONDS
        while True:
            now = asyncio.get_running_loop().time()
            try:
                if settings.retention_days and now >= next_retention:
                    next_retention = now + settings.retention_interval_seconds
                    await self.apply_retention()
                await self.refresh_stats()
            except (StoreFailure, StorageError) as exc:
                log.warning("storage housekeeping failed reason=%s", exc)
            pause = min(STATS_INTERVAL_SECONDS, settings.retention_interval_seconds)
            if settings.retention_days:
                pause = min(pause, max(0.0, next_retention - asyncio.get_running_loop().time()))
            await asyncio.sleep(pause)

    async def _run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

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
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
            self._housekeeper = None
        if self._backend is not None:
            backend, self._backend = self._backend, None
            try:  # a clean stop is the exact end of what this process watched
                at = self._clock()
                await self._run(lambda: backend.mark_alive(at))
            except StoreFailure as exc:
                log.warning("storage liveness not recorded at close reason=%s", exc)
            await self._run(backend.close)
        self._executor.shutdown(wait=True)

    async def _consume(self) -> None:
        backend = self.backend
        write_errors = self._metrics.counter(catalog.STORAGE_WRITE_ERRORS)
        while True:
            batch = await self._next_batch()
            delay = RETRY_INITIAL_SECONDS
            while True:
                now = self._clock()
                alive_at = now if now - self._marked_alive_at >= ALIVE_EVERY_SECONDS else None
                try:
                    new = await self._run(
                        lambda: backend.write_batch(batch, alive_at)  # noqa: B023
                    )
                    if alive_at is not None:
                        self._marked_alive_at = alive_at
                    break
                except StoreFailure as exc:
                    write_errors.labels(exc.reason).inc()
                    self._available.set(0)
                    log.error(
                        "storage write failed rows=%d reason=%s cause=%s",
                        len(batch),
                        exc.reason,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
            self._available.set(1)
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
    """Read helpers (tests, tools): a separate connection to a SQLite file (read-only)
    or a PostgreSQL database. Queries use ``?`` placeholders for either."""

    def __init__(self, target: Path | str, *, password: str | None = None) -> None:
        self._postgres = is_postgres_url(target)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if self._postgres:
            from observer.storage_pg import PostgresBackend

            self._pg = PostgresBackend(str(target), password=password)
        else:
            self._sqlite = sqlite3.connect(f"file:{target}?mode=ro", uri=True)

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()

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
        rows = self.rows("SELECT symbol, COUNT(*) FROM snapshots GROUP BY symbol")
        return {str(symbol): int(count) for symbol, count in rows}

    def snapshots(self, symbol: str) -> list[Snapshot]:
        """``symbol``'s stored snapshots, oldest first, every field decoded."""
        rows = self.rows(
            f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE symbol = ? ORDER BY collected_at",
            (symbol,),
        )
        return [snapshot_from_row(r) for r in rows]

    def trades(self, symbol: str) -> list[Trade]:
        rows = self.rows(
            f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = ? "
            "ORDER BY business_date, cumulative_volume",
            (symbol,),
        )
        return [trade_from_row(r) for r in rows]

    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        """Each symbol's latest stored trade (``Backend.last_trades``)."""
        if self._pg is not None:
            return dict(self._pg.last_trades(symbols))
        from observer.storage_sql import last_trades

        assert self._sqlite is not None
        return last_trades(self._sqlite, symbols)

    def gaps(self, symbol: str | None = None) -> list[Gap]:
        rows = self.rows(
            f"SELECT {GAP_COLUMNS} FROM gaps"
            + (" WHERE symbol = ?" if symbol else "")
            + " ORDER BY start, symbol",
            (symbol,) if symbol else (),
        )
        return [gap_from_row(r) for r in rows]

    def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps still ``pending``, with their windows."""
        if self._pg is not None:
            return list(self._pg.pending_gaps())
        from observer.storage_sql import pending_gaps

        assert self._sqlite is not None
        return pending_gaps(self._sqlite)

    def stats(self) -> StoreStats:
        """Rows, bytes, oldest and newest per table, and the schema version."""
        if self._pg is not None:
            return self._pg.stats()  # type: ignore[no-any-return]
        from observer.storage_sql import stats

        assert self._sqlite is not None
        path = Path(self._sqlite.execute("PRAGMA database_list").fetchone()[2])
        return stats(self._sqlite, path)

    def _scalar(self, query: str) -> int:
        row = next(iter(self.rows(query)), None)
        return int(row[0]) if row else 0

    def rows(self, query: str, parameters: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Any read query (tests that need more than the helpers); ``?`` placeholders."""
        if self._pg is not None:
            connection = self._pg._live()
            translated = query.replace("%", "%%").replace("?", "%s")
            yield from connection.execute(translated, tuple(parameters))
        else:
            assert self._sqlite is not None
            yield from self._sqlite.execute(query, parameters)
