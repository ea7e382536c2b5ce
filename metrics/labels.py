"""The closed label value sets, declared once as the enums the domain uses.

Each enum is both the domain's type (``GapCause.SESSION_DROP`` is what the gap
rules return) and the label's value set (``values(GapCause)`` is what the
catalog declares and the registry pre-initialises), so the two cannot drift.
"""

from __future__ import annotations

import enum


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class GapCause(enum.StrEnum):
    STALE_SNAPSHOT = "stale_snapshot"  # Track A: snapshot older than its cadence
    VOLUME_JUMP = "volume_jump"  # Track B: ACML_VOL jumped by more than CNTG_VOL
    SESSION_DROP = "session_drop"  # Track B: the WebSocket closed
    SESSION_STALL = "session_stall"  # Track B: open but no data (watchdog)
    SILENT_SYMBOL = "silent_symbol"  # Track B: one registered symbol went quiet


class TriggerKind(enum.StrEnum):
    PRICE_MOVE = "price_move"  # price changed by more than the threshold since the last snapshot
    VOLUME_SURGE = "volume_surge"  # volume since the last snapshot well above its usual
    VOLUME_RANK = "volume_rank"  # among the broker's most traded symbols at start (seed)


class ClaimOutcome(enum.StrEnum):
    """What became of a slot claim; the ``outcome`` label of the trigger counter."""

    CLAIMED = "claimed"  # took a free slot
    EVICTED_OTHER = "evicted_other"  # took the slot of a less valuable symbol
    ALREADY_HELD = "already_held"  # the symbol already had a slot (its value is refreshed)
    REFUSED = "refused"  # no free slot and nobody evictable


class ErrorClass(enum.StrEnum):
    """What a failed broker answer means; the ``error_class`` label of the API error counter."""

    RATE_LIMIT = "rate_limit"
    TOKEN = "token"
    AUTH = "auth"
    SERVER = "server"
    TRANSPORT = "transport"
    CLIENT = "client"
    BUSINESS = "business"


class Lane(enum.StrEnum):
    """The limiter's priority lanes, highest priority first."""

    BACKFILL = "backfill"
    SWEEP = "sweep"


class ReconnectReason(enum.StrEnum):
    """Why Track B's WebSocket session ended."""

    DROP = "drop"  # the connection closed after it had opened
    IDLE = "idle"  # the data-idle watchdog fired
    ERROR = "error"  # connecting (or fetching the approval key) failed
    REFUSED = "refused"  # OPSP8996: the app key's session is in use elsewhere
    APPROVAL = "approval"  # OPSP0011: the approval key was refused


class RowKind(enum.StrEnum):
    """What the store writes; the ``kind`` label of the rows-written counter."""

    SNAPSHOT = "snapshot"
    TRADE = "trade"
    GAP = "gap"


class StorageErrorReason(enum.StrEnum):
    """Why a storage write failed; the ``reason`` label of the write-error counter."""

    DISK_FULL = "disk_full"  # the disk or the database server's disk is full
    LOCKED = "locked"  # another writer holds the database
    UNAVAILABLE = "unavailable"  # the database server cannot be reached or refused us
    OTHER = "other"


class Recovery(enum.StrEnum):
    """What a gap's backfill got back; full, partial and none label the backfill counter."""

    PENDING = "pending"  # backfill not tried yet
    FULL = "full"
    PARTIAL = "partial"
    NONE = "none"
    NOT_APPLICABLE = "n/a"  # Track A gaps: no source to backfill from


BACKFILL_OUTCOMES = (Recovery.FULL, Recovery.PARTIAL, Recovery.NONE)


def values(members: type[enum.StrEnum] | tuple[enum.StrEnum, ...]) -> tuple[str, ...]:
    """The label values of an enum (declaration order) or of some of its members."""
    return tuple(member.value for member in members)
