"""Copying a store into another (``observer db copy``): any backend to any backend.

Each table is read in primary-key order, a page at a time (keyset pagination, so
a copy of millions of rows holds one page in memory), and written through the
destination backend's idempotent ``write_batch``: a row already there is not
written twice, so an interrupted copy is finished by running it again, and a
second copy finds nothing new. Snapshot fields are decoded and written again in
the destination's encoding, exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from observer.gaps import GapWindow
from observer.records import Gap
from observer.storage import StorageReader
from observer.storage_rows import (
    GAP_COLUMNS,
    SNAPSHOT_COLUMNS,
    TRADE_COLUMNS,
    WINDOW_COLUMNS,
    Backend,
    Record,
    gap_from_row,
    snapshot_from_row,
    trade_from_row,
    window_from_row,
)

PAGE_ROWS = 5000


@dataclass(frozen=True, slots=True)
class TablePlan:
    table: str
    kind: str  # the ROW_KINDS key of write_batch's counts
    columns: str
    key: tuple[str, ...]
    record: Callable[[Sequence[Any]], Record]


def _gap_record(row: Sequence[Any]) -> Gap | GapWindow:
    # A gap stored with its window comes back as one; one stored without, as a plain gap.
    return window_from_row(row) if row[8] is not None else gap_from_row(row)


PLANS = (
    TablePlan(
        "snapshots", "snapshot", SNAPSHOT_COLUMNS, ("symbol", "collected_at"), snapshot_from_row
    ),
    TablePlan(
        "trades",
        "trade",
        TRADE_COLUMNS,
        ("symbol", "business_date", "cumulative_volume"),
        trade_from_row,
    ),
    TablePlan(
        "gaps",
        "gap",
        f"{GAP_COLUMNS}, {WINDOW_COLUMNS}",
        ("symbol", "track", "cause", "start"),
        _gap_record,
    ),
)


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    read: int  # rows read from the source
    new: int  # rows the destination did not have


def pages(
    reader: StorageReader, plan: TablePlan, page_rows: int = PAGE_ROWS
) -> Iterator[list[tuple[Any, ...]]]:
    """``plan.table``'s rows in primary-key order, ``page_rows`` at a time."""
    keys = ", ".join(f'"{name}"' if name == "end" else name for name in plan.key)
    base = f"SELECT {plan.columns} FROM {plan.table}"
    order = f" ORDER BY {keys} LIMIT ?"
    after: tuple[Any, ...] | None = None
    positions = [plan.columns.replace('"', "").split(", ").index(name) for name in plan.key]
    while True:
        if after is None:
            rows = list(reader.rows(base + order, (page_rows,)))
        else:
            marks = ", ".join("?" * len(plan.key))
            query = f"{base} WHERE ({keys}) > ({marks}){order}"
            rows = list(reader.rows(query, (*after, page_rows)))
        if not rows:
            return
        yield rows
        last = rows[-1]
        after = tuple(last[i] for i in positions)
        if len(rows) < page_rows:
            return


def copy_store(
    source: StorageReader,
    destination: Backend,
    *,
    page_rows: int = PAGE_ROWS,
    progress: Callable[[str, int, int], None] = lambda table, read, new: None,
) -> list[TableCopy]:
    """Copy every table of ``source`` into ``destination``; rows read and new per table.

    ``progress(table, read, new)`` is called after each page.
    """
    copied = []
    for plan in PLANS:
        read = new = 0
        for rows in pages(source, plan, page_rows):
            counts = destination.write_batch([plan.record(row) for row in rows])
            read += len(rows)
            new += counts[plan.kind]
            progress(plan.table, read, new)
        copied.append(TableCopy(plan.table, read, new))
    return copied
