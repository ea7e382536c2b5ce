"""The records Observer collects and stores: snapshots, trades and gaps.

Each record has a natural unique key (``key``) so that storing it twice, after
a restart or a backfill, keeps one row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from metrics.labels import GapCause, Recovery, Severity, TriggerKind

__all__ = [
    "Gap",
    "GapCause",
    "Recovery",
    "Severity",
    "Snapshot",
    "Track",
    "Trade",
    "Trigger",
    "TriggerKind",
]


class Track(enum.StrEnum):
    A = "a"  # REST snapshots
    B = "b"  # WebSocket trades


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One current-price answer for one symbol (``inquire-price`` output)."""

    symbol: str
    collected_at: float  # Unix seconds, when the answer arrived
    price: int  # stck_prpr
    cumulative_volume: int  # acml_vol
    fields: Mapping[str, str] = field(default_factory=dict)  # the whole output, as strings

    @property
    def key(self) -> tuple[str, float]:
        return (self.symbol, self.collected_at)


class Trade(NamedTuple):
    """One executed trade (an ``H0STCNT0`` record or a backfilled row).

    Per symbol and business day ``cumulative_volume`` strictly increases with
    every trade, so (symbol, business_date, cumulative_volume) identifies it;
    the WebSocket record and its backfilled twin share that key.

    A named tuple, not a dataclass: Track B makes one per received record, and
    its fields are in the order of the ``trades`` table's columns, so a trade is
    its own row of SQL parameters (``observer.storage_sql``). Copy with
    ``trade._replace(source=...)``.
    """

    symbol: str
    business_date: str  # YYYYMMDD (BSOP_DATE)
    time: str  # HHMMSS (STCK_CNTG_HOUR)
    price: int
    volume: int  # CNTG_VOL
    cumulative_volume: int  # ACML_VOL
    source: str = "ws"  # "ws", "backfill" or "sim"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.symbol, self.business_date, self.cumulative_volume)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    """A stretch for which data that should exist was not collected."""

    symbol: str
    track: Track
    cause: GapCause
    start: float  # Unix seconds: the last good data before the hole
    end: float  # Unix seconds: the first good data after it
    severity: Severity
    missing_volume: int | None = None  # Track B volume jumps: how much was missed
    recovery: Recovery = Recovery.PENDING

    @property
    def key(self) -> tuple[str, str, str, float]:
        return (self.symbol, self.track.value, self.cause.value, self.start)

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """Track A's request for a Track B slot: ``symbol`` moved, by how much (``score``)."""

    symbol: str
    kind: TriggerKind
    score: float  # how far past its threshold: 1.0 is just at it; higher is more valuable
    at: float  # Unix seconds when Track A saw it
