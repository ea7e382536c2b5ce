"""Track B's slots as one pool over the cluster's keys (pure, no I/O).

Each live key brings ``capacity`` registrations (at most 41, its member's
``track_b.capacity``); the pool is their sum. The leader
(``observer.cluster_slots``) decides with ``place``:

1. slots on a key that is no longer live (and any beyond a key's capacity) are
   *orphans*: most valuable first, each moves to the live key with the most free
   slots, keeping its former holder so that the member now holding it resumes
   the symbol from its last stored trade (the stretch nobody watched becomes a
   ``session_drop`` gap, backfilled as after a restart); orphans that find no
   free slot are dropped — they never evict anyone. A key in ``reserved`` (one
   that cannot take slots yet: its owner gone with a standby about to take it
   over, or still starting) keeps its slots, up to its reserved count, and takes
   no new ones, nor is anyone evicted there: its member resumes them once running;
2. then every trigger, in the order raised, meets ``SlotTable``'s rules across
   the whole pool: a symbol already held is refreshed (``already_held``);
   otherwise it takes a free slot on the key with the most free slots
   (``claimed``); otherwise it evicts the least valuable holder past its minimum
   hold and worth less than the trigger, on whichever key that holder is
   (``evicted_other``); otherwise it is ``refused``.

A symbol holds at most one slot in the pool and no key ever holds more than its
capacity. Times are plain floats from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from metrics.labels import ClaimOutcome
from observer.records import Trigger
from observer.slots import decayed, victim


@dataclass(frozen=True, slots=True)
class PooledSlot:
    """A symbol's registration on one key of the cluster (a ``cluster_slots`` row)."""

    symbol: str
    key: str  # the key fingerprint whose WebSocket session registers it
    kind: str  # its latest trigger's kind
    value: float  # the trigger's score at ``valued_at``
    valued_at: float
    claimed_at: float
    holder: str | None = None  # the process that registered it; None until one has
    orphaned_at: float | None = None  # when the leader moved it from a key gone

    def value_at(self, now: float, half_life_seconds: float) -> float:
        return decayed(self.value, self.valued_at, now, half_life_seconds)


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one trigger: its outcome, the key it is on, whom it evicted."""

    trigger: Trigger
    outcome: ClaimOutcome
    key: str | None = None
    evicted: PooledSlot | None = None


@dataclass
class Placement:
    """The pool after ``place``, with what changed on the way."""

    slots: dict[str, PooledSlot]  # symbol -> its slot
    decisions: list[Decision] = field(default_factory=list)
    moved: list[PooledSlot] = field(default_factory=list)  # orphans, on their new key
    dropped: list[PooledSlot] = field(default_factory=list)  # orphans that fit nowhere

    def per_key(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for slot in self.slots.values():
            counts[slot.key] = counts.get(slot.key, 0) + 1
        return counts


def place(
    slots: Iterable[PooledSlot],
    capacities: Mapping[str, int],
    triggers: Sequence[Trigger],
    *,
    min_hold_seconds: float,
    now: float,
    reserved: Mapping[str, int] | None = None,
    ownerless_since: Mapping[str, float] | None = None,
) -> Placement:
    """The pool after moving orphans and deciding ``triggers``; see the module docstring.

    ``capacities`` maps each live key to its number of slots (0: the key takes none);
    ``reserved`` maps a key that cannot take slots yet to the slots it keeps meanwhile;
    ``ownerless_since`` a key to when it was first seen so (or without an owner),
    the ``orphaned_at`` of its slots when they move (default: ``now``).
    """
    waiting = reserved or {}
    pool: dict[str, PooledSlot] = {}
    orphans: list[PooledSlot] = []
    by_key: dict[str, list[PooledSlot]] = {}
    for slot in slots:
        by_key.setdefault(slot.key, []).append(slot)
    for key, held in by_key.items():
        worth_first = sorted(held, key=lambda s: (-s.value_at(now, min_hold_seconds), s.symbol))
        keep = max(0, capacities[key] if key in capacities else waiting.get(key, 0))
        for slot in worth_first[:keep]:
            pool[slot.symbol] = slot
        orphans.extend(worth_first[keep:])
    placement = Placement(pool)
    counts = placement.per_key()
    orphans.sort(key=lambda s: (-s.value_at(now, min_hold_seconds), s.symbol))
    for orphan in orphans:
        target = _roomiest(capacities, counts)
        if target is None:
            placement.dropped.append(orphan)
            continue
        since = (ownerless_since or {}).get(orphan.key, now)
        moved = replace(orphan, key=target, claimed_at=now, orphaned_at=since)
        pool[orphan.symbol] = moved
        counts[target] = counts.get(target, 0) + 1
        placement.moved.append(moved)
    for trigger in sorted(triggers, key=lambda t: (t.at, t.symbol)):
        placement.decisions.append(
            _decide(pool, counts, capacities, trigger, min_hold_seconds, now)
        )
    return placement


def _decide(
    pool: dict[str, PooledSlot],
    counts: dict[str, int],
    capacities: Mapping[str, int],
    trigger: Trigger,
    min_hold: float,
    now: float,
) -> Decision:
    symbol, score = trigger.symbol, trigger.score
    held = pool.get(symbol)
    if held is not None:
        value = max(held.value_at(now, min_hold), score)
        pool[symbol] = replace(held, kind=trigger.kind.value, value=value, valued_at=now)
        return Decision(trigger, ClaimOutcome.ALREADY_HELD, held.key)
    key = _roomiest(capacities, counts)
    if key is not None:
        pool[symbol] = PooledSlot(symbol, key, trigger.kind.value, score, now, now)
        counts[key] = counts.get(key, 0) + 1
        return Decision(trigger, ClaimOutcome.CLAIMED, key)
    # Only a live key's holders: a key that cannot take slots yet takes nobody new.
    loser = victim([s for s in pool.values() if s.key in capacities], score, now, min_hold)
    if loser is None:
        return Decision(trigger, ClaimOutcome.REFUSED)
    del pool[loser.symbol]
    pool[symbol] = PooledSlot(symbol, loser.key, trigger.kind.value, score, now, now)
    return Decision(trigger, ClaimOutcome.EVICTED_OTHER, loser.key, evicted=loser)


def _roomiest(capacities: Mapping[str, int], counts: Mapping[str, int]) -> str | None:
    """The live key with the most free slots (ties: the lowest fingerprint); None if full."""
    free = {key: capacity - counts.get(key, 0) for key, capacity in capacities.items()}
    best = min(free, key=lambda key: (-free[key], key), default=None)
    return best if best is not None and free[best] > 0 else None


def changes(
    before: Mapping[str, PooledSlot], after: Mapping[str, PooledSlot]
) -> tuple[list[str], list[PooledSlot]]:
    """The symbols whose rows go and the slots whose rows are written (new or changed)."""
    gone = sorted(symbol for symbol in before if symbol not in after)
    written = [slot for symbol, slot in sorted(after.items()) if before.get(symbol) != slot]
    return gone, written
