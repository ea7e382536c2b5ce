"""``SlotTable``: which symbols hold the WebSocket's registration slots (pure, no I/O).

KIS allows 41 ``H0STCNT0`` registrations per session; the 42nd is refused
with ``OPSP0008``. The table never holds more than its capacity (at most 41).
A trigger claims a free slot; when none is free it evicts the least valuable
holder that has held its slot for at least ``min_hold_seconds`` and is worth
less than the newcomer; otherwise the trigger is refused (slot starvation).
A holder's value is its trigger's score, halved for every ``min_hold_seconds``
without a new trigger (no decay when the hold is 0), so yesterday's spike does
not keep a slot from today's. Times are plain floats from the caller's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from metrics.labels import ClaimOutcome
from observer.errors import ObserverError

KIS_MAX_REGISTRATIONS = 41


class SlotError(ObserverError):
    """An impossible slot request (capacity out of range, negative hold)."""


@dataclass(frozen=True, slots=True)
class Slot:
    index: int  # 0 .. capacity-1, stable while held (the metrics' ``slot`` label)
    symbol: str
    value: float  # the trigger's score at ``valued_at``: higher is more valuable
    claimed_at: float
    valued_at: float

    def value_at(self, now: float, half_life_seconds: float) -> float:
        """``value`` halved for every ``half_life_seconds`` since ``valued_at``."""
        return decayed(self.value, self.valued_at, now, half_life_seconds)


class Holder(Protocol):
    """What the eviction rule looks at in a held slot (``Slot``, ``slot_pool.PooledSlot``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def claimed_at(self) -> float: ...
    def value_at(self, now: float, half_life_seconds: float) -> float: ...


H = TypeVar("H", bound=Holder)


def decayed(value: float, valued_at: float, now: float, half_life_seconds: float) -> float:
    """``value`` halved for every ``half_life_seconds`` since ``valued_at`` (none when 0)."""
    if half_life_seconds <= 0:
        return value
    return value * math.pow(0.5, max(0.0, now - valued_at) / half_life_seconds)


def victim(holders: Sequence[H], value: float, now: float, min_hold: float) -> H | None:
    """The least valuable holder past its minimum hold and worth less than ``value``.

    Ties go to the earliest claim. ``min_hold`` is also the value's half-life.
    """
    worth = {h.symbol: h.value_at(now, min_hold) for h in holders}
    candidates = [h for h in holders if now - h.claimed_at >= min_hold and worth[h.symbol] < value]
    return min(candidates, key=lambda h: (worth[h.symbol], h.claimed_at), default=None)


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    slot: Slot | None  # the slot the symbol holds now (None when refused)
    evicted: str | None = None  # the symbol that lost its slot


class SlotTable:
    """At most ``capacity`` symbols, each in a numbered slot."""

    def __init__(self, capacity: int, *, min_hold_seconds: float) -> None:
        if not 1 <= capacity <= KIS_MAX_REGISTRATIONS:
            raise SlotError(f"capacity must be 1 to {KIS_MAX_REGISTRATIONS}, got {capacity}")
        if min_hold_seconds < 0:
            raise SlotError(f"min_hold_seconds must be >= 0, got {min_hold_seconds}")
        self.capacity = capacity
        self.min_hold_seconds = min_hold_seconds
        self._by_symbol: dict[str, Slot] = {}

    @property
    def allocated(self) -> int:
        return len(self._by_symbol)

    def symbols(self) -> list[str]:
        """Held symbols in slot order."""
        return [slot.symbol for slot in self.slots()]

    def slots(self) -> list[Slot]:
        return sorted(self._by_symbol.values(), key=lambda slot: slot.index)

    def slot_of(self, symbol: str) -> Slot | None:
        return self._by_symbol.get(symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def claim(self, symbol: str, value: float, now: float) -> Claim:
        """Give ``symbol`` a slot if it is worth one; see the module docstring for the rule."""
        held = self._by_symbol.get(symbol)
        if held is not None:
            current = held.value_at(now, self.min_hold_seconds)
            refreshed = Slot(held.index, symbol, max(current, value), held.claimed_at, now)
            self._by_symbol[symbol] = refreshed
            return Claim(ClaimOutcome.ALREADY_HELD, refreshed)
        free = self._free_index()
        if free is not None:
            return Claim(ClaimOutcome.CLAIMED, self._take(free, symbol, value, now))
        victim = self._victim(value, now)
        if victim is None:
            return Claim(ClaimOutcome.REFUSED, None)
        del self._by_symbol[victim.symbol]
        slot = self._take(victim.index, symbol, value, now)
        return Claim(ClaimOutcome.EVICTED_OTHER, slot, evicted=victim.symbol)

    def release(self, symbol: str) -> Slot | None:
        """Free ``symbol``'s slot; the slot it held, or None if it held none."""
        return self._by_symbol.pop(symbol, None)

    def _take(self, index: int, symbol: str, value: float, now: float) -> Slot:
        slot = Slot(index, symbol, value, now, now)
        self._by_symbol[symbol] = slot
        return slot

    def _free_index(self) -> int | None:
        used = {slot.index for slot in self._by_symbol.values()}
        return next((i for i in range(self.capacity) if i not in used), None)

    def _victim(self, value: float, now: float) -> Slot | None:
        return victim(list(self._by_symbol.values()), value, now, self.min_hold_seconds)
