"""``StatusBoard``: the live state the status page shows that the metrics cannot carry.

A domain object like ``Readiness``: Track A reports its sweep progress, every
gap passes through it (detected, then recovered), Track B lends it a view of
its slots and the composition root adds the links of the stack it started. The
exporter reads ``view()`` for ``/api/summary`` on the event loop (the state is
loop-owned), never a secret: symbols, counts, times and closed label values only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from observer.records import Gap

RECENT_GAPS = 20


@dataclass(frozen=True, slots=True)
class SlotView:
    """One held Track B slot as the page shows it."""

    index: int
    symbol: str
    held_since: float  # wall time the symbol claimed its slot
    last_frame_at: float | None  # wall time of its last received record; None before one
    trigger: str  # the kind of the trigger that claimed (or last refreshed) the slot
    score: float


SlotSource = Callable[[], list[SlotView]]


class SweepProgress:
    """Track A's current sweep: symbols answered of the universe, rate and ETA.

    ``rate`` is the current sweep's answers per second since it began; until a
    second has passed it is the last sweep's, so the ETA does not jump at a start.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.limit_per_second = 0.0
        self.total = 0
        self.done = 0
        self.sweeps = 0
        self.last_sweep_seconds: float | None = None
        self._started_at: float | None = None
        self._last_rate = 0.0

    def started(self, total: int) -> None:
        self.total, self.done = total, 0
        self._started_at = self._monotonic()

    def advanced(self, count: int = 1) -> None:
        self.done += count

    def finished(self, duration_seconds: float) -> None:
        self.sweeps += 1
        self.last_sweep_seconds = duration_seconds
        if duration_seconds > 0:
            self._last_rate = self.done / duration_seconds
        self.done = self.total
        self._started_at = None

    def rate(self) -> float:
        if self._started_at is None:
            return self._last_rate
        elapsed = self._monotonic() - self._started_at
        return self.done / elapsed if elapsed >= 1.0 else self._last_rate

    def eta_seconds(self) -> float | None:
        """Seconds until this sweep ends at the current rate; None when unknown."""
        if self._started_at is None:
            return 0.0 if self.sweeps else None
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def view(self) -> dict[str, Any]:
        eta = self.eta_seconds()
        last = self.last_sweep_seconds
        return {
            "done": self.done,
            "total": self.total,
            "running": self._started_at is not None,
            "sweeps": self.sweeps,
            "rate": round(self.rate(), 2),
            "rate_limit": round(self.limit_per_second, 2),
            "eta_seconds": None if eta is None else round(eta, 1),
            "last_sweep_seconds": None if last is None else round(last, 2),
        }


class StatusBoard:
    """Sweep progress, the most recent gaps, the held slots and the stack's links."""

    def __init__(
        self,
        *,
        recent_gaps: int = RECENT_GAPS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sweep = SweepProgress(monotonic)
        self._clock = clock
        self._recent_gaps = recent_gaps
        self._gaps: OrderedDict[tuple[str, str, str, float], Gap] = OrderedDict()
        self._slot_source: SlotSource = list
        self._links: dict[str, str] = {}

    def gap(self, gap: Gap) -> None:
        """A gap detected, or the same gap (same key) again with its recovery."""
        key = gap.key
        if key not in self._gaps:
            self._gaps[key] = gap
            while len(self._gaps) > self._recent_gaps:
                self._gaps.popitem(last=False)
        else:
            self._gaps[key] = gap  # a recovery keeps its place in the order of detection

    def show_slots(self, source: SlotSource) -> None:
        """Where the held slots are read from (Track B, when it runs)."""
        self._slot_source = source

    def slots(self) -> list[SlotView]:
        """The held slots now (none before Track B lends its view)."""
        return self._slot_source()

    def link(self, name: str, url: str) -> None:
        self._links[name] = url

    def view(self) -> dict[str, Any]:
        """JSON-ready: ``sweep_progress``, ``slots`` (slot order), ``recent_gaps`` (newest
        first) and ``links``; call it on the loop that owns the state."""
        now = self._clock()
        return {
            "sweep_progress": self.sweep.view(),
            "slots": [_slot_row(slot, now) for slot in self._slot_source()],
            "recent_gaps": [_gap_row(gap) for gap in reversed(self._gaps.values())],
            "links": dict(self._links),
        }


def _slot_row(slot: SlotView, now: float) -> dict[str, Any]:
    frame_at = slot.last_frame_at
    return {
        "slot": slot.index,
        "symbol": slot.symbol,
        "held_since": round(slot.held_since, 3),
        "held_seconds": round(max(0.0, now - slot.held_since), 1),
        "last_frame_age_seconds": None if frame_at is None else round(max(0.0, now - frame_at), 1),
        "trigger": slot.trigger,
        "score": round(slot.score, 3),
    }


def _gap_row(gap: Gap) -> dict[str, Any]:
    return {
        "symbol": gap.symbol,
        "track": gap.track.value,
        "cause": gap.cause.value,
        "severity": gap.severity.value,
        "recovery": gap.recovery.value,
        "start": round(gap.start, 3),
        "end": round(gap.end, 3),
        "seconds": round(gap.duration_seconds, 3),
        "missing_volume": gap.missing_volume,
    }
