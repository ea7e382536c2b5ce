"""The cluster's slot pool (pure): placement across keys, eviction cluster-wide, orphans moved."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metrics.labels import ClaimOutcome
from observer.records import Trigger, TriggerKind
from observer.slot_pool import PooledSlot, changes, place
from observer.slots import KIS_MAX_REGISTRATIONS, SlotTable

HOLD = 10.0


def trigger(symbol: str, score: float, at: float = 100.0) -> Trigger:
    return Trigger(symbol=symbol, kind=TriggerKind.PRICE_MOVE, score=score, at=at)


def slot(
    symbol: str, key: str, value: float = 1.0, *, at: float = 0.0, holder: str | None = None
) -> PooledSlot:
    return PooledSlot(symbol, key, "price_move", value, at, at, holder)


def test_a_trigger_takes_a_free_slot_on_the_roomiest_key() -> None:
    pool = [slot("A", "k1"), slot("B", "k1")]
    placement = place(pool, {"k1": 2, "k2": 2}, [trigger("C", 2.0)], min_hold_seconds=HOLD, now=100)
    (decision,) = placement.decisions
    assert decision.outcome is ClaimOutcome.CLAIMED and decision.key == "k2"
    assert placement.slots["C"].key == "k2" and placement.slots["C"].holder is None
    assert placement.per_key() == {"k1": 2, "k2": 1}


def test_a_held_symbol_is_refreshed_where_it_is() -> None:
    pool = [slot("A", "k2", 1.0, at=95.0, holder="p")]
    placement = place(pool, {"k1": 1, "k2": 1}, [trigger("A", 3.0)], min_hold_seconds=HOLD, now=100)
    assert placement.decisions[0].outcome is ClaimOutcome.ALREADY_HELD
    refreshed = placement.slots["A"]
    assert (refreshed.key, refreshed.value, refreshed.valued_at, refreshed.holder) == (
        "k2",
        3.0,
        100,
        "p",
    )
    assert refreshed.claimed_at == 95.0  # the minimum hold counts from the first claim


def test_a_full_pool_evicts_the_least_valuable_holder_on_any_key() -> None:
    pool = [slot("A", "k1", 5.0), slot("B", "k2", 1.5), slot("C", "k2", 4.0)]
    placement = place(pool, {"k1": 1, "k2": 2}, [trigger("D", 2.0)], min_hold_seconds=0, now=100)
    (decision,) = placement.decisions
    assert decision.outcome is ClaimOutcome.EVICTED_OTHER
    assert decision.evicted is not None and decision.evicted.symbol == "B"
    assert placement.slots["D"].key == "k2" and "B" not in placement.slots


def test_nobody_is_evicted_inside_the_minimum_hold_or_by_a_weaker_trigger() -> None:
    young = [slot("A", "k1", 1.0, at=95.0)]
    placement = place(young, {"k1": 1}, [trigger("B", 9.0)], min_hold_seconds=HOLD, now=100)
    assert placement.decisions[0].outcome is ClaimOutcome.REFUSED
    old = [slot("A", "k1", 5.0)]
    placement = place(old, {"k1": 1}, [trigger("B", 2.0)], min_hold_seconds=0, now=100)
    assert placement.decisions[0].outcome is ClaimOutcome.REFUSED
    assert set(placement.slots) == {"A"}


def test_a_dead_keys_slots_move_within_the_survivors_capacity_most_valuable_first() -> None:
    pool = [
        slot("A", "dead", 1.0, holder="gone"),
        slot("B", "dead", 3.0, holder="gone"),
        slot("C", "dead", 2.0, holder="gone"),
        slot("D", "k1", 1.0, holder="p1"),
    ]
    placement = place(pool, {"k1": 2, "k2": 1}, [], min_hold_seconds=0, now=100)
    assert {s.symbol: s.key for s in placement.moved} == {"B": "k1", "C": "k2"}  # ties: k1
    assert [s.symbol for s in placement.dropped] == ["A"]  # no room left: dropped, nobody evicted
    assert placement.slots["D"] == pool[3]
    # A moved slot keeps its former holder: the member taking it resumes from the store.
    assert placement.slots["B"].holder == "gone" and placement.slots["B"].claimed_at == 100
    gone, written = changes({s.symbol: s for s in pool}, placement.slots)
    assert gone == ["A"] and [s.symbol for s in written] == ["B", "C"]


def test_a_key_whose_capacity_shrank_gives_its_least_valuable_slots_away() -> None:
    pool = [slot("A", "k1", 1.0), slot("B", "k1", 2.0), slot("C", "k1", 3.0)]
    placement = place(pool, {"k1": 2, "k2": 41}, [], min_hold_seconds=0, now=100)
    assert placement.per_key() == {"k1": 2, "k2": 1} and placement.slots["A"].key == "k2"


def test_a_key_waiting_for_its_standby_keeps_its_slots_and_takes_no_new_ones() -> None:
    pool = [slot("A", "gone", 1.0), slot("B", "gone", 2.0), slot("C", "gone", 3.0)]
    placement = place(
        pool,
        {"k1": 1},
        [trigger("D", 9.0), trigger("E", 9.0, at=101.0)],
        min_hold_seconds=0,
        now=100,
        reserved={"gone": 2},
    )
    # Beyond the standby's capacity: moved like a dead key's slot.
    assert [(s.symbol, s.key) for s in placement.moved] == [("A", "k1")]
    # D evicts A on the live key; E finds nobody it may evict there: refused.
    assert {s: placement.slots[s].key for s in placement.slots} == {
        "B": "gone",
        "C": "gone",
        "D": "k1",
    }
    outcomes = [d.outcome for d in placement.decisions]
    assert outcomes == [ClaimOutcome.EVICTED_OTHER, ClaimOutcome.REFUSED]
    assert placement.decisions[0].key == "k1"


def test_no_change_writes_nothing() -> None:
    pool = {s.symbol: s for s in [slot("A", "k1"), slot("B", "k2")]}
    placement = place(pool.values(), {"k1": 1, "k2": 1}, [], min_hold_seconds=HOLD, now=100)
    assert changes(pool, placement.slots) == ([], [])


def test_one_key_decides_as_a_slot_table_would() -> None:
    """With one key the pool's outcomes are SlotTable's, trigger for trigger."""
    table = SlotTable(3, min_hold_seconds=0)
    pool: list[PooledSlot] = []
    scores = [("A", 1.0), ("B", 2.0), ("C", 3.0), ("D", 1.5), ("E", 0.5), ("B", 4.0), ("F", 9.0)]
    for at, (symbol, score) in enumerate(scores, start=1):
        expected = table.claim(symbol, score, float(at))
        placement = place(
            pool, {"k": 3}, [trigger(symbol, score, float(at))], min_hold_seconds=0, now=float(at)
        )
        assert placement.decisions[0].outcome is expected.outcome, symbol
        pool = list(placement.slots.values())
        assert sorted(placement.slots) == sorted(table.symbols())


@given(
    capacities=st.dictionaries(
        st.sampled_from(["k1", "k2", "k3", "k4"]),
        st.integers(0, KIS_MAX_REGISTRATIONS),
        max_size=4,
    ),
    held=st.lists(
        st.tuples(
            st.integers(0, 200), st.sampled_from(["k1", "k2", "k3", "k4", "dead"]), st.floats(0, 9)
        ),
        max_size=120,
        unique_by=lambda row: row[0],
    ),
    raised=st.lists(st.tuples(st.integers(0, 200), st.floats(0, 9)), max_size=80),
    hold=st.sampled_from([0.0, 5.0, 60.0]),
    waiting=st.none() | st.integers(0, KIS_MAX_REGISTRATIONS),
)
def test_no_key_ever_exceeds_its_capacity_and_no_symbol_holds_two_slots(
    capacities: dict[str, int],
    held: list[tuple[int, str, float]],
    raised: list[tuple[int, float]],
    hold: float,
    waiting: int | None,
) -> None:
    """``waiting``: the dead key's standby is connected, with that many slots."""
    pool = [slot(f"{n:06d}", key, value, at=float(n % 50)) for n, key, value in held]
    triggers = [trigger(f"{n:06d}", score, 50.0 + i) for i, (n, score) in enumerate(raised)]
    reserved = {} if waiting is None else {"dead": waiting}
    placement = place(
        pool, capacities, triggers, min_hold_seconds=hold, now=100.0, reserved=reserved
    )
    limits = {**reserved, **capacities}
    for key, count in placement.per_key().items():
        assert count <= limits.get(key, 0) <= KIS_MAX_REGISTRATIONS
    kept = {s.symbol for s in pool if s.key == "dead"}
    assert {s.symbol for s in placement.slots.values() if s.key == "dead"} <= kept
    assert all(symbol == s.symbol for symbol, s in placement.slots.items())
    live_held = sum(1 for s in placement.slots.values() if s.key in capacities)
    free = sum(capacities.values()) - live_held
    assert not (placement.dropped and free > 0)  # an orphan is dropped only when all is full
    if any(d.outcome is ClaimOutcome.REFUSED for d in placement.decisions):
        assert free == 0  # refused only when the whole pool is full (and stays full)
