"""SQLite rows of Observer's records: schema, migration, batched writes and reads.

Pure functions of one ``sqlite3.Connection`` (no event loop, no queue): the writer
thread of ``observer.storage.Storage`` and ``StorageReader`` use them. Every record
is stored under its natural unique key (``records.py``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

from metrics import catalog
from observer.errors import ObserverError
from observer.gaps import GapWindow
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track, Trade

Record = Snapshot | Trade | Gap | GapWindow

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
CREATE TABLE IF NOT EXISTS liveness (
    id INTEGER PRIMARY KEY CHECK (id = 1), alive_at REAL NOT NULL
);
"""

INSERT_SNAPSHOT = "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)"
INSERT_TRADE = "INSERT OR IGNORE INTO trades VALUES (?, ?, ?, ?, ?, ?, ?)"
TRADE_ROWS_PER_INSERT = 4096  # rows of one multi-row INSERT at most (7 parameters each)
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
# A Trade is bound as it is: its fields must be the table's columns, in order.
assert ", ".join(Trade._fields) == TRADE_COLUMNS
NEXT_TRADE_SYMBOL = "SELECT MIN(symbol) FROM trades WHERE symbol > ?"
LAST_TRADE = (
    f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = ? "
    "ORDER BY business_date DESC, cumulative_volume DESC LIMIT 1"
)
# The writing process's last sign of life (Unix seconds): after a restart, where the
# stretch Observer could not watch began (docs/gaps.md "After a restart").
MARK_ALIVE = (
    "INSERT INTO liveness (id, alive_at) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET alive_at = excluded.alive_at"
)
LAST_ALIVE = "SELECT alive_at FROM liveness WHERE id = 1"
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
            new[_kind(record)] += _write(connection, record)
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
        row: tuple[Any, ...] = (
            record.symbol,
            record.collected_at,
            record.price,
            record.cumulative_volume,
            json.dumps(dict(record.fields), ensure_ascii=False, sort_keys=True),
        )
        return connection.execute(INSERT_SNAPSHOT, row).rowcount
    if isinstance(record, Trade):
        return connection.execute(INSERT_TRADE, record).rowcount
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


def mark_alive(connection: sqlite3.Connection, at: float) -> None:
    """Record ``at`` as the writing process's latest sign of life (its own statement)."""
    connection.execute(MARK_ALIVE, (at,))


def last_alive(connection: sqlite3.Connection) -> float | None:
    """When the process that last wrote here was last known alive; None if never recorded."""
    row = connection.execute(LAST_ALIVE).fetchone()
    return None if row is None else float(row[0])


def trade_from_row(row: Sequence[Any]) -> Trade:
    return Trade(
        symbol=row[0],
        business_date=row[1],
        time=row[2],
        price=row[3],
        volume=row[4],
        cumulative_volume=row[5],
        source=row[6],
    )


def gap_from_row(row: Sequence[Any]) -> Gap:
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
            gap=gap_from_row(row),
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
            found[symbol] = trade_from_row(last)
    return found
