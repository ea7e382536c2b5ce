"""What every storage backend shares: the schema version, the backend interface, rows.

A backend (``storage_sql.SqliteBackend``, ``storage_pg.PostgresBackend``) stores
Observer's records in three tables with the same natural keys — ``snapshots``
(symbol, collected_at), ``trades`` (symbol, business_date, cumulative_volume) and
``gaps`` (symbol, track, cause, start) — and reads them back in the same shape.
It is used from one thread at a time (``observer.storage.Storage``'s writer), so
its methods are plain blocking calls.

A snapshot's ``fields`` are stored as ``observer.snapshot_codec`` bytes (schema
version 2); rows written by schema version 1 hold them as JSON text, and both
read back the same (``decode_fields``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from observer import snapshot_codec
from observer.errors import ObserverError
from observer.gaps import GapWindow
from observer.market import KST
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track, Trade

Record = Snapshot | Trade | Gap | GapWindow

# 1: fields as JSON text, gap windows added by ALTER TABLE. 2: fields as codec bytes,
# window columns in the table, retention. Raised with every change of a table.
SCHEMA_VERSION = 2

SNAPSHOT_COLUMNS = "symbol, collected_at, price, cumulative_volume, fields"
TRADE_COLUMNS = "symbol, business_date, time, price, volume, cumulative_volume, source"
GAP_COLUMNS = 'symbol, track, cause, start, "end", severity, missing_volume, recovery'
WINDOW_COLUMNS = "business_date, after_cumulative, upto_cumulative, before_time, since_time"
TABLES = ("snapshots", "trades", "gaps")
TABLE_KIND = {"snapshots": "snapshot", "trades": "trade", "gaps": "gap"}  # ROW_KINDS label
# A Trade is bound as it is: its fields must be the table's columns, in order.
assert ", ".join(Trade._fields) == TRADE_COLUMNS


class StorageError(ObserverError):
    """The database cannot be opened, is not Observer's, or is of a newer schema."""


class StoreFailure(Exception):
    """A write or read the database refused (full, locked, unreachable): kept and retried.

    ``reason`` is the ``observer_storage_write_errors_total`` label
    (``metrics.labels.StorageErrorReason``); the message names the cause and never
    a credential.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Backend(Protocol):
    """One database behind ``Storage``: blocking calls, made from one thread at a time.

    Every method but ``close`` raises ``StoreFailure`` when the database refuses it.
    """

    name: str  # "sqlite" or "postgresql"
    migrated_from: int  # the schema version found when it was opened (0: a new database)

    def write_batch(self, batch: Sequence[Record], alive_at: float | None = None) -> dict[str, int]:
        """Commit ``batch`` all or nothing; new rows by kind (``ROW_KINDS``).

        ``alive_at`` (Unix seconds), when given, is recorded as the writer's latest
        sign of life along with the batch (``last_alive``).
        """
        ...

    def last_alive(self) -> float | None:
        """When the process that last wrote here was last known alive; None if never."""
        ...

    def mark_alive(self, at: float) -> None:
        """Record ``at`` as the writing process's latest sign of life."""
        ...

    def last_trades(self, symbols: Iterable[str] | None = None) -> dict[str, Trade]:
        """Each symbol's latest stored trade (latest business day, highest volume)."""
        ...

    def pending_gaps(self) -> list[GapWindow]:
        """Track B gaps still ``pending``, with their windows, oldest first."""
        ...

    def retention_step(self, cutoffs: Cutoffs) -> tuple[dict[str, int], bool]:
        """Delete a bounded part of what is older than ``cutoffs``.

        Returns rows deleted by kind and whether the pass is finished; the next
        call after a finished pass starts a new one.
        """
        ...

    def stats(self, *, exact: bool = True) -> StoreStats:
        """Bytes and age per table, the schema version; rows unless ``exact`` is False."""
        ...

    def close(self) -> None: ...


def check_version(found: int, where: str) -> None:
    """Refuse a database written by a newer Observer (one line, what to do)."""
    if found > SCHEMA_VERSION:
        raise StorageError(
            f"{where} has schema version {found}, newer than this Observer's "
            f"{SCHEMA_VERSION}: run a newer Observer or another database"
        )


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What retention keeps: snapshots and gaps from these Unix times, trades from this day."""

    snapshot_after: float  # Unix seconds
    trade_business_date: str  # YYYYMMDD (KST), the oldest day kept
    gap_after: float  # Unix seconds


def cutoffs(now: float, retention_days: int, gap_retention_days: int) -> Cutoffs:
    """Cut-offs at KST midnights: the last ``retention_days`` days are kept, today included."""
    today = datetime.fromtimestamp(now, KST).replace(hour=0, minute=0, second=0, microsecond=0)
    keep_from = today - timedelta(days=retention_days - 1)
    gaps_from = today - timedelta(days=gap_retention_days - 1)
    return Cutoffs(keep_from.timestamp(), keep_from.strftime("%Y%m%d"), gaps_from.timestamp())


@dataclass(frozen=True, slots=True)
class TableStats:
    table: str
    rows: int  # -1 when not counted (a count reads the whole table)
    bytes: int | None  # on disk, indexes included; None where the database cannot tell
    oldest: float | None  # Unix seconds of the oldest row, None when empty
    newest: float | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    backend: str
    schema_version: int
    database_bytes: int
    tables: tuple[TableStats, ...]


def business_date_time(business_date: str, time: str = "000000") -> float:
    """Unix seconds of a KST business date (YYYYMMDD) and time (HHMMSS)."""
    moment = datetime.strptime(business_date + time, "%Y%m%d%H%M%S").replace(tzinfo=KST)
    return moment.timestamp()


def kind(record: Record) -> str:
    if isinstance(record, Snapshot):
        return "snapshot"
    if isinstance(record, Trade):
        return "trade"
    return "gap"


def encode_fields(fields: Mapping[str, str]) -> bytes:
    return snapshot_codec.encode(fields)


def decode_fields(stored: bytes | memoryview | str) -> dict[str, str]:
    """A stored ``fields`` value: codec bytes (schema 2) or JSON text (schema 1)."""
    if isinstance(stored, str):
        return {str(k): str(v) for k, v in json.loads(stored).items()}
    return snapshot_codec.decode(bytes(stored))


def snapshot_row(record: Snapshot) -> tuple[Any, ...]:
    return (
        record.symbol,
        record.collected_at,
        record.price,
        record.cumulative_volume,
        encode_fields(record.fields),
    )


def gap_key(gap: Gap) -> tuple[str, str, str, float]:
    return (gap.symbol, gap.track.value, gap.cause.value, gap.start)


def gap_values(gap: Gap) -> tuple[float, str, int | None, str]:
    return (gap.end, gap.severity.value, gap.missing_volume, gap.recovery.value)


def window_values(window: GapWindow) -> tuple[Any, ...]:
    return (
        window.business_date,
        window.after_cumulative,
        window.upto_cumulative,
        window.before_time,
        window.since_time,
    )


def snapshot_from_row(row: Sequence[Any]) -> Snapshot:
    return Snapshot(
        symbol=row[0],
        collected_at=row[1],
        price=row[2],
        cumulative_volume=row[3],
        fields=decode_fields(row[4]),
    )


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


def window_from_row(row: Sequence[Any]) -> GapWindow:
    """A gap row followed by its window columns (``GAP_COLUMNS, WINDOW_COLUMNS``).

    A gap stored without a window (by a version that did not keep one) comes
    back without bounds (no business date, no ``upto``): backfill says ``none``.
    """
    return GapWindow(
        gap=gap_from_row(row),
        business_date=row[8] or "",
        after_cumulative=row[9],
        upto_cumulative=row[10],
        before_time=row[11] or "",
        since_time=row[12],
    )
