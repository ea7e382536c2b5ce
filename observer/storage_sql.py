"""The SQLite backend: schema and its versions, batched writes, reads, retention.

Pure functions of one ``sqlite3.Connection`` (no event loop, no queue) and
``SqliteBackend``, which ``observer.storage.Storage``'s writer thread drives.
Every record is stored under its natural unique key (``records.py``).

Schema versions (``schema_version`` table; a database without it is version 1):
1 stored a snapshot's fields as JSON text and added the gap window columns by
``ALTER TABLE``; 2 stores fields as ``snapshot_codec`` bytes (about 130 bytes
instead of 2 KB: SQLite keeps a BLOB as it is in a column declared TEXT, so old
rows stay as they are and read back the same) and records the version. A new
database uses ``auto_vacuum = INCREMENTAL`` so retention gives its pages back to
the file system a step at a time; an older one reuses the freed pages.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import chain
from pathlib import Path

from metrics import catalog
from metrics.labels import StorageErrorReason
from observer.gaps import GapWindow
from observer.records import Recovery, Snapshot, Track, Trade
from observer.storage_rows import (
    GAP_COLUMNS,
    SCHEMA_VERSION,
    SNAPSHOT_COLUMNS,
    TABLE_KIND,
    TABLES,
    TRADE_COLUMNS,
    WINDOW_COLUMNS,
    Cutoffs,
    Record,
    StorageError,
    StoreFailure,
    StoreStats,
    TableStats,
    business_date_time,
    check_version,
    gap_key,
    gap_values,
    kind,
    snapshot_row,
    trade_from_row,
    window_from_row,
    window_values,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    symbol TEXT NOT NULL, collected_at REAL NOT NULL, price INTEGER NOT NULL,
    cumulative_volume INTEGER NOT NULL, fields BLOB NOT NULL,
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
    business_date TEXT, after_cumulative INTEGER, upto_cumulative INTEGER, before_time TEXT,
    since_time TEXT,
    PRIMARY KEY (symbol, track, cause, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS liveness (
    id INTEGER PRIMARY KEY CHECK (id = 1), alive_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""

INSERT_SNAPSHOT = f"INSERT OR IGNORE INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
INSERT_TRADE = "INSERT OR IGNORE INTO trades VALUES (?, ?, ?, ?, ?, ?, ?)"
TRADE_ROWS_PER_INSERT = 4096  # rows of one multi-row INSERT at most (7 parameters each)
INSERT_GAP = f"INSERT OR IGNORE INTO gaps ({GAP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# Added to version 1 databases by ALTER TABLE; part of the table since version 2.
GAP_WINDOW_COLUMNS = {
    "business_date": "TEXT",
    "after_cumulative": "INTEGER",
    "upto_cumulative": "INTEGER",
    "before_time": "TEXT",
    "since_time": "TEXT",
}
assert ", ".join(GAP_WINDOW_COLUMNS) == WINDOW_COLUMNS
UPDATE_GAP_WINDOW = (
    f"UPDATE gaps SET {', '.join(f'{name} = ?' for name in GAP_WINDOW_COLUMNS)} "
    "WHERE symbol = ? AND track = ? AND cause = ? AND start = ?"
)
PENDING_GAPS = (
    f"SELECT {GAP_COLUMNS}, {WINDOW_COLUMNS} FROM gaps "
    "WHERE track = ? AND recovery = ? ORDER BY start, symbol"
)
NEXT_TRADE_SYMBOL = "SELECT MIN(symbol) FROM trades WHERE symbol > ?"
LAST_TRADE = (
    f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = ? "
    "ORDER BY business_date DESC, cumulative_volume DESC LIMIT 1"
)
UPDATE_GAP = (
    'UPDATE gaps SET "end" = ?, severity = ?, missing_volume = ?, recovery = ? '
    "WHERE symbol = ? AND track = ? AND cause = ? AND start = ?"
)
# The writing process's last sign of life (Unix seconds): after a restart, where the
# stretch Observer could not watch began (docs/gaps.md "After a restart").
MARK_ALIVE = (
    "INSERT INTO liveness (id, alive_at) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET alive_at = excluded.alive_at"
)
LAST_ALIVE = "SELECT alive_at FROM liveness WHERE id = 1"
# Retention deletes one symbol's old rows at a time, at most this many a statement:
# the writer thread goes back to the queue between steps.
RETENTION_ROWS_PER_STEP = 5000
VACUUM_PAGES_PER_STEP = 2000


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with the schema migrated to ``SCHEMA_VERSION``.

    Raises ``StorageError`` for a database of a newer schema (nothing is changed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA busy_timeout=5000")
        migrate(connection, str(path))
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL: a process crash loses nothing committed.
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection


def schema_version(connection: sqlite3.Connection) -> int:
    """The version of the schema in ``connection``: 0 for an empty database."""
    tables = {str(row[0]) for row in connection.execute("SELECT name FROM sqlite_master")}
    if "schema_version" in tables:
        row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)
    return 1 if tables & set(TABLES) else 0


def _version_of(path: Path) -> int:
    """The schema version of the file at ``path`` (0 when it does not exist yet)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return schema_version(connection)


def migrate(connection: sqlite3.Connection, where: str) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction; returns the version found."""
    found = schema_version(connection)
    check_version(found, where)
    if found == SCHEMA_VERSION:
        return found
    if found == 0:
        # Only an empty file takes this before its first table (pages for retention).
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while this one waited for the lock.
        found = schema_version(connection)
        check_version(found, where)
        if found < SCHEMA_VERSION:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            if found == 1:
                have = {str(row[1]) for row in connection.execute("PRAGMA table_info(gaps)")}
                for name, type_ in GAP_WINDOW_COLUMNS.items():
                    if name not in have:  # a database from before the window was stored
                        connection.execute(f"ALTER TABLE gaps ADD COLUMN {name} {type_}")
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise
    return found


def write_batch(connection: sqlite3.Connection, batch: Sequence[Record]) -> dict[str, int]:
    """Commit ``batch`` in one transaction; returns new rows by kind.

    On error the transaction is rolled back and the original error raised. On a
    full disk (``SQLITE_FULL``) SQLite may already have rolled back by itself: a
    second ROLLBACK would then fail with "no transaction is active" and replace
    the real cause, so it is issued only while a transaction is still open.

    Trades, most of any batch, go in multi-row ``INSERT``s (up to
    ``TRADE_ROWS_PER_INSERT`` rows a statement): one SQLite step per chunk rather
    than per row, and the writer thread gives the GIL back for the whole chunk.
    Snapshots and gaps keep their order (a gap stored twice in one batch is
    inserted, then updated). Committing the batch as one transaction keeps it all or nothing, so the
    order of trades and gaps inside it does not matter.
    """
    new = dict.fromkeys(catalog.ROW_KINDS, 0)
    trades: list[Trade] = []
    others: list[Record] = []
    for record in batch:
        if isinstance(record, Trade):
            trades.append(record)
        else:
            others.append(record)
    most = _largest_chunk(_variable_limit(connection) // len(Trade._fields))
    count = len(trades)
    if not others and count <= most and count & (count - 1) == 0:
        # Exactly one statement (a power of two rows: a full batch), which is its own
        # transaction (autocommit): no BEGIN and COMMIT steps, after each of which the
        # writer thread would wait for the GIL again.
        new["trade"] = _insert_trades(connection, trades, most)
        return new
    connection.execute("BEGIN")
    try:
        for record in others:
            new[kind(record)] += _write(connection, record)
        if trades:
            new["trade"] += _insert_trades(connection, trades, most)
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise
    return new


def _rollback(connection: sqlite3.Connection) -> None:
    """Roll back an open transaction; a failing rollback never hides the error being handled."""
    if not connection.in_transaction:
        return
    # The caller re-raises the error that made the rollback necessary: that is the cause.
    with contextlib.suppress(sqlite3.Error):
        connection.execute("ROLLBACK")


def _insert_trades(connection: sqlite3.Connection, trades: list[Trade], most: int) -> int:
    """Insert ``trades`` (each is its own row of parameters); how many were new.

    In chunks of a power of two rows, the largest first, so a handful of
    statement texts (cached once prepared) cover any count: never a statement
    per row, whose every step would hand the GIL back and forth. ``most`` is the
    largest chunk (``_largest_chunk``).
    """
    inserted = 0
    start, left = 0, len(trades)
    while left:
        rows = min(most, 1 << (left.bit_length() - 1))
        flat = list(chain.from_iterable(trades[start : start + rows]))
        inserted += connection.execute(_multi_row_insert(rows), flat).rowcount
        start, left = start + rows, left - rows
    return inserted


def _largest_chunk(rows_allowed: int) -> int:
    """The largest power of two at most ``TRADE_ROWS_PER_INSERT`` and ``rows_allowed``."""
    return 1 << (min(TRADE_ROWS_PER_INSERT, rows_allowed).bit_length() - 1)


@cache
def _multi_row_insert(rows: int) -> str:
    values = "(" + ", ".join("?" * len(Trade._fields)) + ")"
    return "INSERT OR IGNORE INTO trades VALUES " + ", ".join([values] * rows)


def _variable_limit(connection: sqlite3.Connection) -> int:
    """Parameters one statement may bind (999 before SQLite 3.32, 32766 since by default)."""
    return connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _write(connection: sqlite3.Connection, record: Record) -> int:
    if isinstance(record, Snapshot):
        return connection.execute(INSERT_SNAPSHOT, snapshot_row(record)).rowcount
    if isinstance(record, Trade):
        return connection.execute(INSERT_TRADE, record).rowcount
    if isinstance(record, GapWindow):
        inserted = _write(connection, record.gap)
        connection.execute(UPDATE_GAP_WINDOW, (*window_values(record), *gap_key(record.gap)))
        return inserted
    key, values = gap_key(record), gap_values(record)
    inserted = connection.execute(INSERT_GAP, (*key, *values)).rowcount
    if not inserted:
        connection.execute(UPDATE_GAP, (*values, *key))
    return inserted


def mark_alive(connection: sqlite3.Connection, at: float) -> None:
    """Record ``at`` as the writing process's latest sign of life (its own statement)."""
    connection.execute(MARK_ALIVE, (at,))


def last_alive(connection: sqlite3.Connection) -> float | None:
    """When the process that last wrote here was last known alive; None if never recorded."""
    row = connection.execute(LAST_ALIVE).fetchone()
    return None if row is None else float(row[0])


def pending_gaps(connection: sqlite3.Connection) -> list[GapWindow]:
    """Every Track B gap still ``pending``, with its stored window, oldest first."""
    rows = connection.execute(PENDING_GAPS, (Track.B.value, Recovery.PENDING.value))
    return [window_from_row(row) for row in rows]


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
            found[symbol] = trade_from_row(last)
    return found


def symbols(connection: sqlite3.Connection, table: str, after: str = "") -> Iterable[str]:
    """The symbols of ``table`` in order, from after ``after``: a primary-key lookup each."""
    query = f"SELECT MIN(symbol) FROM {table} WHERE symbol > ?"
    row = connection.execute(query, (after,)).fetchone()
    while row is not None and row[0] is not None:
        yield str(row[0])
        row = connection.execute(query, (row[0],)).fetchone()


DELETE_OLD = {
    "snapshots": (
        "DELETE FROM snapshots WHERE symbol = ?1 AND collected_at IN "
        "(SELECT collected_at FROM snapshots WHERE symbol = ?1 AND collected_at < ?2 LIMIT ?3)"
    ),
    "trades": (
        "DELETE FROM trades WHERE symbol = ?1 AND (business_date, cumulative_volume) IN "
        "(SELECT business_date, cumulative_volume FROM trades "
        "WHERE symbol = ?1 AND business_date < ?2 LIMIT ?3)"
    ),
}
DELETE_OLD_GAPS = (
    "DELETE FROM gaps WHERE (symbol, track, cause, start) IN "
    "(SELECT symbol, track, cause, start FROM gaps WHERE start < ? LIMIT ?)"
)


class RetentionPass:
    """One pass of SQLite retention, a bounded step at a time (``step``).

    Each step deletes at most ``rows_per_step`` rows in its own transaction —
    old snapshots and trades one symbol at a time (primary-key ranges, never a
    table scan), then old gaps — and, once everything old is gone, gives free
    pages back to the file system (``PRAGMA incremental_vacuum``) in steps.
    Between steps the writer thread serves the write queue.
    """

    def __init__(self, cutoffs: Cutoffs, rows_per_step: int = RETENTION_ROWS_PER_STEP) -> None:
        self._cutoffs = cutoffs
        self._rows_per_step = rows_per_step
        self._table_index = 0
        self._after = ""  # the symbols before this one are done in the current table
        self.finished = False

    def step(self, connection: sqlite3.Connection) -> dict[str, int]:
        """Delete (or vacuum) a bounded amount; rows deleted by kind."""
        deleted = dict.fromkeys(catalog.ROW_KINDS, 0)
        budget = self._rows_per_step
        while budget > 0 and self._table_index < 2:
            table = ("snapshots", "trades")[self._table_index]
            limit = (
                self._cutoffs.snapshot_after
                if table == "snapshots"
                else self._cutoffs.trade_business_date
            )
            symbol = next(iter(symbols(connection, table, self._after)), None)
            if symbol is None:
                self._table_index, self._after = self._table_index + 1, ""
                continue
            allowed = budget
            count = connection.execute(DELETE_OLD[table], (symbol, limit, allowed)).rowcount
            deleted[TABLE_KIND[table]] += count
            budget -= count
            if count < allowed:
                self._after = symbol  # this symbol has nothing old left
        if budget > 0 and self._table_index == 2:
            count = connection.execute(DELETE_OLD_GAPS, (self._cutoffs.gap_after, budget)).rowcount
            deleted["gap"] += count
            budget -= count
            if budget > 0:
                self._table_index = 3
        if budget > 0 and self._table_index == 3:
            free = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
            auto_vacuum = int(connection.execute("PRAGMA auto_vacuum").fetchone()[0])
            if free and auto_vacuum == 2:  # INCREMENTAL
                connection.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP})")
            else:
                self.finished = True
        return deleted


def database_bytes(path: Path) -> int:
    """The file and its write-ahead log, as the file system has them."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += (path.parent / (path.name + suffix)).stat().st_size
    return total


OLDEST_NEWEST = {
    "snapshots": "SELECT MIN(collected_at), MAX(collected_at) FROM snapshots WHERE symbol = ?",
    "trades": "SELECT MIN(business_date), MAX(business_date) FROM trades WHERE symbol = ?",
}
FIRST_TRADE_TIME = "SELECT MIN(time) FROM trades WHERE symbol = ? AND business_date = ?"
LAST_TRADE_TIME = "SELECT MAX(time) FROM trades WHERE symbol = ? AND business_date = ?"


def oldest_newest(connection: sqlite3.Connection) -> dict[str, tuple[float | None, float | None]]:
    """Unix seconds of each table's oldest and newest row (None, None when empty).

    Primary-key lookups per symbol rather than a scan of the table.
    """
    found: dict[str, tuple[float | None, float | None]] = {}
    snapshot_bounds = [
        connection.execute(OLDEST_NEWEST["snapshots"], (symbol,)).fetchone()
        for symbol in symbols(connection, "snapshots")
    ]
    found["snapshots"] = (
        min((row[0] for row in snapshot_bounds), default=None),
        max((row[1] for row in snapshot_bounds), default=None),
    )
    oldest: float | None = None
    newest: float | None = None
    for symbol in symbols(connection, "trades"):
        first_day, last_day = connection.execute(OLDEST_NEWEST["trades"], (symbol,)).fetchone()
        first = connection.execute(FIRST_TRADE_TIME, (symbol, first_day)).fetchone()[0]
        last = connection.execute(LAST_TRADE_TIME, (symbol, last_day)).fetchone()[0]
        start, end = business_date_time(first_day, first), business_date_time(last_day, last)
        oldest = start if oldest is None else min(oldest, start)
        newest = end if newest is None else max(newest, end)
    found["trades"] = (oldest, newest)
    row = connection.execute("SELECT MIN(start), MAX(start) FROM gaps").fetchone()
    found["gaps"] = (row[0], row[1])
    return found


def table_bytes(connection: sqlite3.Connection) -> dict[str, int | None]:
    """Bytes of each table's pages (SQLite's ``dbstat``; None where it is not built in)."""
    try:
        rows = connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.Error:
        return dict.fromkeys(TABLES)
    sizes = {str(name): int(size) for name, size in rows}
    return {table: sizes.get(table, 0) for table in TABLES}


def stats(connection: sqlite3.Connection, path: Path, *, exact: bool = True) -> StoreStats:
    """Rows (a count of each table unless ``exact`` is False), bytes, oldest, newest."""
    bounds = oldest_newest(connection)
    sizes = table_bytes(connection) if exact else dict.fromkeys(TABLES)
    tables = tuple(
        TableStats(
            table=table,
            rows=(
                int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                if exact
                else -1
            ),
            bytes=sizes[table],
            oldest=bounds[table][0],
            newest=bounds[table][1],
        )
        for table in TABLES
    )
    return StoreStats("sqlite", schema_version(connection), database_bytes(path), tables)


def failure(error: sqlite3.Error) -> StoreFailure:
    """``error`` as a ``StoreFailure`` with its reason label."""
    text = str(error)
    lowered = text.lower()
    if "full" in lowered:
        reason = StorageErrorReason.DISK_FULL
    elif "locked" in lowered or "busy" in lowered:
        reason = StorageErrorReason.LOCKED
    elif "unable to open" in lowered or "disk i/o" in lowered:
        reason = StorageErrorReason.UNAVAILABLE
    else:
        reason = StorageErrorReason.OTHER
    return StoreFailure(reason.value, text)


class SqliteBackend:
    """The embedded store: one SQLite file in WAL mode (``connect``)."""

    name = "sqlite"
    retention_rows_per_step = RETENTION_ROWS_PER_STEP

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.migrated_from = _version_of(path)  # the version before this open
            self.connection = connect(path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        self._retention: RetentionPass | None = None

    def write_batch(self, batch: Sequence[Record], alive_at: float | None = None) -> dict[str, int]:
        try:
            new = write_batch(self.connection, batch)
            if alive_at is not None:
                mark_alive(self.connection, alive_at)
            return new
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def last_alive(self) -> float | None:
        try:
            return last_alive(self.connection)
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def mark_alive(self, at: float) -> None:
        try:
            mark_alive(self.connection, at)
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        try:
            return last_trades(self.connection, symbols)
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def pending_gaps(self) -> list[GapWindow]:
        try:
            return pending_gaps(self.connection)
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def retention_step(self, cutoffs: Cutoffs) -> tuple[dict[str, int], bool]:
        """One bounded step of a retention pass; (rows deleted by kind, pass finished)."""
        if self._retention is None:
            self._retention = RetentionPass(cutoffs, self.retention_rows_per_step)
        try:
            deleted = self._retention.step(self.connection)
        except sqlite3.Error as exc:
            raise failure(exc) from exc
        finished = self._retention.finished
        if finished:
            self._retention = None
        return deleted, finished

    def stats(self, *, exact: bool = True) -> StoreStats:
        try:
            return stats(self.connection, self.path, exact=exact)
        except sqlite3.Error as exc:
            raise failure(exc) from exc

    def close(self) -> None:
        self.connection.close()
