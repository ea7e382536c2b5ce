"""The PostgreSQL backend: the shared store, partitioned by day, written in batches.

Driven by ``observer.storage.Storage``'s writer thread with psycopg 3's blocking
API, like the SQLite backend: one connection in autocommit mode, one transaction
per batch. The tables keep the natural keys of ``records.py``; snapshots and
trades go in as one ``INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING`` each per
batch (one round trip for any number of rows), gaps as upserts.

Partitions: ``snapshots`` by KST day of ``collected_at``, ``trades`` by
``business_date``, ``gaps`` by KST month of ``start``. Partitions are created
ahead (today and the next ``PARTITIONS_AHEAD_DAYS``) and on demand for any day a
batch needs (a backfill of an older day), under an advisory lock so that several
Observers sharing the database never race. Retention drops whole partitions (and
deletes the expired gaps of the month it keeps: a handful of rows a day).

A connection that breaks (server restarted, network gone) is replaced at the
next write; the failed batch stays queued (``StoreFailure``, reason
``unavailable``). The password is never part of an error or a log line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

from metrics import catalog
from metrics.labels import StorageErrorReason
from observer.gaps import GapWindow
from observer.market import KST
from observer.records import Gap, Recovery, Snapshot, Track, Trade
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
    snapshot_row,
    trade_from_row,
    window_from_row,
    window_values,
)

PARTITIONS_AHEAD_DAYS = 2
CONNECT_TIMEOUT_SECONDS = 5
SCHEMA_LOCK = "observer:schema"
PARTITION_LOCK = "observer:partitions"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS liveness (
        id integer PRIMARY KEY CHECK (id = 1), alive_at double precision NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        symbol text NOT NULL, collected_at double precision NOT NULL, price bigint NOT NULL,
        cumulative_volume bigint NOT NULL, fields bytea NOT NULL,
        PRIMARY KEY (symbol, collected_at)
    ) PARTITION BY RANGE (collected_at)""",
    """CREATE TABLE IF NOT EXISTS trades (
        symbol text NOT NULL, business_date text COLLATE "C" NOT NULL, time text NOT NULL,
        price bigint NOT NULL, volume bigint NOT NULL, cumulative_volume bigint NOT NULL,
        source text NOT NULL,
        PRIMARY KEY (symbol, business_date, cumulative_volume)
    ) PARTITION BY RANGE (business_date)""",
    """CREATE TABLE IF NOT EXISTS gaps (
        symbol text NOT NULL, track text NOT NULL, cause text NOT NULL,
        start double precision NOT NULL, "end" double precision NOT NULL,
        severity text NOT NULL, missing_volume bigint, recovery text NOT NULL,
        business_date text, after_cumulative bigint, upto_cumulative bigint,
        before_time text, since_time text,
        PRIMARY KEY (symbol, track, cause, start)
    ) PARTITION BY RANGE (start)""",
)

INSERT_SNAPSHOTS = (
    f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) "
    "SELECT * FROM unnest(%s::text[], %s::float8[], %s::int8[], %s::int8[], %s::bytea[]) "
    "ON CONFLICT DO NOTHING"
)
INSERT_TRADES = (
    f"INSERT INTO trades ({TRADE_COLUMNS}) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[], "
    "%s::int8[], %s::text[]) ON CONFLICT DO NOTHING"
)
# A gap stored again under its key updates its outcome (and window): insert, and
# update only when nothing was inserted (partitioned tables do not return xmax).
INSERT_GAP = (
    f"INSERT INTO gaps ({GAP_COLUMNS}, {WINDOW_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
UPDATE_GAP = (
    'UPDATE gaps SET "end" = %s, severity = %s, missing_volume = %s, recovery = %s '
    "WHERE symbol = %s AND track = %s AND cause = %s AND start = %s"
)
UPDATE_GAP_WINDOW = (
    'UPDATE gaps SET "end" = %s, severity = %s, missing_volume = %s, recovery = %s, '
    + ", ".join(f"{name} = %s" for name in WINDOW_COLUMNS.split(", "))
    + " WHERE symbol = %s AND track = %s AND cause = %s AND start = %s"
)
MARK_ALIVE = (
    "INSERT INTO liveness (id, alive_at) VALUES (1, %s) "
    "ON CONFLICT (id) DO UPDATE SET alive_at = EXCLUDED.alive_at"
)
PENDING_GAPS = (
    f"SELECT {GAP_COLUMNS}, {WINDOW_COLUMNS} FROM gaps "
    "WHERE track = %s AND recovery = %s ORDER BY start, symbol"
)
LAST_TRADE = (
    f"SELECT {TRADE_COLUMNS} FROM trades WHERE symbol = %s "
    "ORDER BY business_date DESC, cumulative_volume DESC LIMIT 1"
)
# Every symbol with a trade, by a loose index scan (one index probe per symbol).
TRADE_SYMBOLS = """
WITH RECURSIVE s(symbol) AS (
    (SELECT symbol FROM trades ORDER BY symbol LIMIT 1)
    UNION ALL
    SELECT (SELECT t.symbol FROM trades t WHERE t.symbol > s.symbol ORDER BY t.symbol LIMIT 1)
    FROM s WHERE s.symbol IS NOT NULL
)
SELECT symbol FROM s WHERE symbol IS NOT NULL
"""
PARTITIONS = """
SELECT parent.relname, child.relname FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
JOIN pg_namespace ns ON ns.oid = child.relnamespace
WHERE ns.nspname = current_schema() AND parent.relname = ANY(%s)
"""
_PARTITION_NAME = re.compile(r"^(snapshots|trades)_(\d{8})$|^(gaps)_(\d{6})$")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _day_start(day: datetime) -> float:
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _kst_day(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, KST).replace(hour=0, minute=0, second=0, microsecond=0)


def partition_name(table: str, key: str) -> str:
    return f"{table}_{key}"


def partition_ddl(table: str, key: str) -> str:
    """``CREATE TABLE … PARTITION OF`` for ``table``'s partition ``key``.

    ``key`` is YYYYMMDD (a KST day) for snapshots and trades, YYYYMM (a KST month)
    for gaps.
    """
    name = partition_name(table, key)
    if table == "trades":
        following = (datetime.strptime(key, "%Y%m%d") + timedelta(days=1)).strftime("%Y%m%d")
        bounds = f"FROM ('{key}') TO ('{following}')"
    elif table == "snapshots":
        day = datetime.strptime(key, "%Y%m%d").replace(tzinfo=KST)
        bounds = f"FROM ({_day_start(day)!r}) TO ({_day_start(day + timedelta(days=1))!r})"
    else:
        month = datetime.strptime(key + "01", "%Y%m%d").replace(tzinfo=KST)
        next_month = (month + timedelta(days=32)).replace(day=1)
        bounds = f"FROM ({month.timestamp()!r}) TO ({next_month.timestamp()!r})"
    return f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES {bounds}"


def partition_keys(batch: Sequence[Record]) -> set[tuple[str, str]]:
    """(table, key) of every partition ``batch`` writes into."""
    keys: set[tuple[str, str]] = set()
    for record in batch:
        if isinstance(record, Trade):
            keys.add(("trades", record.business_date))
        elif isinstance(record, Snapshot):
            keys.add(("snapshots", _kst_day(record.collected_at).strftime("%Y%m%d")))
        else:
            gap = record.gap if isinstance(record, GapWindow) else record
            keys.add(("gaps", _kst_day(gap.start).strftime("%Y%m")))
    return keys


def ahead_keys(now: float, days: int = PARTITIONS_AHEAD_DAYS) -> set[tuple[str, str]]:
    """Today's partitions and the next ``days`` days' (and their months' for gaps)."""
    today = _kst_day(now)
    keys: set[tuple[str, str]] = set()
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        keys.add(("snapshots", day.strftime("%Y%m%d")))
        keys.add(("trades", day.strftime("%Y%m%d")))
        keys.add(("gaps", day.strftime("%Y%m")))
    return keys


def partition_start(table: str, key: str) -> float:
    """Unix seconds at which partition ``key`` of ``table`` begins (KST)."""
    if table == "gaps":
        return business_date_time(key + "01")
    return business_date_time(key)


def expired(table: str, key: str, cutoffs: Cutoffs) -> bool:
    """Whether every row partition ``key`` can hold is older than ``cutoffs``."""
    if table == "trades":
        return key < cutoffs.trade_business_date
    if table == "snapshots":
        day = datetime.strptime(key, "%Y%m%d").replace(tzinfo=KST)
        return _day_start(day + timedelta(days=1)) <= cutoffs.snapshot_after
    month = datetime.strptime(key + "01", "%Y%m%d").replace(tzinfo=KST)
    following = (month + timedelta(days=32)).replace(day=1)
    return following.timestamp() <= cutoffs.gap_after


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows turned into one list per column (the arrays ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


def failure(error: psycopg.Error, password: str | None) -> StoreFailure:
    """``error`` as a ``StoreFailure`` with its reason, the password cut out."""
    if isinstance(error, pg_errors.DiskFull):
        reason = StorageErrorReason.DISK_FULL
    elif isinstance(error, pg_errors.LockNotAvailable | pg_errors.DeadlockDetected):
        reason = StorageErrorReason.LOCKED
    elif isinstance(error, psycopg.OperationalError | pg_errors.AdminShutdown):
        reason = StorageErrorReason.UNAVAILABLE
    else:
        reason = StorageErrorReason.OTHER
    return StoreFailure(reason.value, safe_message(error, password))


def safe_message(error: BaseException, password: str | None) -> str:
    """``error`` on one line, the password cut out."""
    message = " ".join(str(error).split()) or type(error).__name__
    return message.replace(password, "***") if password else message


class PostgresBackend:
    """The shared store: a PostgreSQL database named by a ``postgresql://`` URL.

    ``password`` (from ``storage.password_file``) overrides one in the URL.
    Opening migrates the schema (under an advisory lock) and creates the
    partitions ahead; it raises ``StorageError`` when the server cannot be
    reached or its schema is newer.
    """

    name = "postgresql"

    def __init__(self, url: str, *, password: str | None = None) -> None:
        self.url = url
        self._password = password if password is not None else urlsplit(url).password
        self._known: set[tuple[str, str]] = set()  # partitions that exist
        self._connection: psycopg.Connection[Any] | None = None
        try:
            self._connection = self._connect()
            self.migrated_from = self._migrate(self._connection)  # the version found
            self.schema_version = max(self.migrated_from, SCHEMA_VERSION)
            self._load_partitions(self._connection)
        except psycopg.Error as exc:
            self.close()
            raise StorageError(
                f"cannot open database {redact(url)}: {failure(exc, self._password)}"
            ) from exc
        except BaseException:
            self.close()
            raise

    # --- connection --------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "observer",
            # A half-open connection (server gone without a FIN) is noticed in seconds.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        if self._password is not None:
            options["password"] = self._password
        return psycopg.connect(self.url, **options)

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, replaced when the last one broke (server restarted)."""
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            self._connection = None
            connection = self._connection = self._connect()
            self._known.clear()
            self._load_partitions(connection)
        return connection

    def _migrate(self, connection: psycopg.Connection[Any]) -> int:
        """Create or upgrade the schema (several Observers starting at once take turns);
        returns the version found (0: a new database)."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,))
            exists = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            row = exists.fetchone()
            found = 0
            if row is not None and row[0]:
                current = connection.execute("SELECT max(version) FROM schema_version")
                value = current.fetchone()
                found = int(value[0]) if value is not None and value[0] is not None else 0
            check_version(found, redact(self.url))
            if found < SCHEMA_VERSION:
                for statement in SCHEMA:
                    connection.execute(statement)
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        return found

    def _load_partitions(self, connection: psycopg.Connection[Any]) -> None:
        for _parent, child in connection.execute(PARTITIONS, (list(TABLES),)):
            match = _PARTITION_NAME.match(child)
            if match:
                table = match.group(1) or match.group(3)
                key = match.group(2) or match.group(4)
                self._known.add((table, key))

    def ensure_partitions(self, keys: Iterable[tuple[str, str]]) -> None:
        """Create the partitions of ``keys`` that do not exist yet."""
        missing = sorted(set(keys) - self._known)
        if not missing:
            return
        connection = self._live()
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PARTITION_LOCK,))
            for table, key in missing:
                connection.execute(partition_ddl(table, key))
        self._known.update(missing)

    # --- writes ------------------------------------------------------------------
    def write_batch(self, batch: Sequence[Record], alive_at: float | None = None) -> dict[str, int]:
        """Commit ``batch`` (and the liveness mark) in one transaction; new rows by kind."""
        try:
            return self._write_batch(batch, alive_at)
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc

    def last_alive(self) -> float | None:
        try:
            row = self._live().execute("SELECT alive_at FROM liveness WHERE id = 1").fetchone()
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc
        return None if row is None else float(row[0])

    def mark_alive(self, at: float) -> None:
        try:
            self._live().execute(MARK_ALIVE, (at,))
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc

    def _write_batch(self, batch: Sequence[Record], alive_at: float | None) -> dict[str, int]:
        self.ensure_partitions(partition_keys(batch) | ahead_keys(time.time()))
        new = dict.fromkeys(catalog.ROW_KINDS, 0)
        snapshots = [snapshot_row(r) for r in batch if isinstance(r, Snapshot)]
        trades = [r for r in batch if isinstance(r, Trade)]
        gaps = [r for r in batch if isinstance(r, Gap | GapWindow)]
        connection = self._live()
        with connection.transaction():
            if snapshots:
                cursor = connection.execute(INSERT_SNAPSHOTS, columns(snapshots))
                new["snapshot"] = cursor.rowcount
            if trades:
                cursor = connection.execute(INSERT_TRADES, columns(trades))
                new["trade"] = cursor.rowcount
            for record in gaps:  # in order: a gap stored twice is inserted, then updated
                window = record if isinstance(record, GapWindow) else None
                gap = record.gap if isinstance(record, GapWindow) else record
                bounds = window_values(window) if window else (None, None, None, None, None)
                key, values = gap_key(gap), gap_values(gap)
                cursor = connection.execute(INSERT_GAP, (*key, *values, *bounds))
                if cursor.rowcount:
                    new["gap"] += 1
                elif window is not None:
                    connection.execute(UPDATE_GAP_WINDOW, (*values, *bounds, *key))
                else:
                    connection.execute(UPDATE_GAP, (*values, *key))
            if alive_at is not None:
                connection.execute(MARK_ALIVE, (alive_at,))
        return new

    # --- reads -------------------------------------------------------------------
    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        try:
            connection = self._live()
            wanted = (
                [str(row[0]) for row in connection.execute(TRADE_SYMBOLS)]
                if symbols is None
                else list(symbols)
            )
            found: dict[str, Trade] = {}
            for symbol in wanted:
                row = connection.execute(LAST_TRADE, (symbol,)).fetchone()
                if row is not None:
                    found[symbol] = trade_from_row(row)
            return found
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc

    def pending_gaps(self) -> list[GapWindow]:
        try:
            rows = self._live().execute(PENDING_GAPS, (Track.B.value, Recovery.PENDING.value))
            return [window_from_row(row) for row in rows]
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc

    # --- retention and stats -----------------------------------------------------
    def retention_step(self, cutoffs: Cutoffs) -> tuple[dict[str, int], bool]:
        """Drop every partition older than ``cutoffs`` (whole partitions, no row deletes)."""
        deleted = dict.fromkeys(catalog.ROW_KINDS, 0)
        try:
            connection = self._live()
            self._known.clear()
            self._load_partitions(connection)
            for table, key in sorted(self._known):
                if not expired(table, key, cutoffs):
                    continue
                name = partition_name(table, key)
                with connection.transaction():
                    connection.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (PARTITION_LOCK,)
                    )
                    exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
                    row = exists.fetchone()
                    if row is None or not row[0]:
                        continue  # another Observer dropped it
                    count = connection.execute(f"SELECT count(*) FROM {name}").fetchone()
                    connection.execute(f"DROP TABLE {name}")
                deleted[TABLE_KIND[table]] += int(count[0]) if count is not None else 0
                self._known.discard((table, key))
            # Gaps are partitioned by month: the expired days of the oldest month kept
            # go row by row (a handful of gaps a day).
            cursor = connection.execute("DELETE FROM gaps WHERE start < %s", (cutoffs.gap_after,))
            deleted["gap"] += max(0, cursor.rowcount)
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc
        return deleted, True

    def stats(self, *, exact: bool = True) -> StoreStats:
        """Per table: rows, bytes, oldest and newest (exact, or from partitions when not)."""
        try:
            connection = self._live()
            self._known.clear()
            self._load_partitions(connection)
            size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
            tables = tuple(self._table_stats(connection, table, exact) for table in TABLES)
            return StoreStats(self.name, self.schema_version, int(size[0]) if size else 0, tables)
        except psycopg.Error as exc:
            raise failure(exc, self._password) from exc

    def _table_stats(
        self, connection: psycopg.Connection[Any], table: str, exact: bool
    ) -> TableStats:
        keys = sorted(key for name, key in self._known if name == table)
        size = 0
        for key in keys:
            row = connection.execute(
                "SELECT pg_total_relation_size(%s)", (partition_name(table, key),)
            ).fetchone()
            size += int(row[0]) if row and row[0] is not None else 0
        if exact:
            column = {"snapshots": "collected_at", "gaps": "start"}.get(table)
            if column is None:
                query = (
                    "SELECT count(*), min(business_date || time), max(business_date || time) "
                    "FROM trades"
                )
            else:
                query = f"SELECT count(*), min({column}), max({column}) FROM {table}"
            count, low, high = connection.execute(query).fetchone() or (0, None, None)
            if table == "trades":
                low = business_date_time(low[:8], low[8:]) if low else None
                high = business_date_time(high[:8], high[8:]) if high else None
            return TableStats(table, int(count), size, low, high)
        oldest = None
        for key in keys:  # the oldest partition that holds a row
            name = partition_name(table, key)
            if connection.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchone():
                oldest = partition_start(table, key)
                break
        return TableStats(table, -1, size, oldest, None)

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()
