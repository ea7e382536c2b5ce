"""SlotTable: capacity, claims, evictions by value after the minimum hold, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.labels import ClaimOutcome
from observer.slots import SlotError, SlotTable


def test_capacity_is_bounded_by_kis() -> None:
    with pytest.raises(SlotError):
        SlotTable(42, min_hold_seconds=0)
    with pytest.raises(SlotError):
        SlotTable(0, min_hold_seconds=0)
    assert SlotTable(41, min_hold_seconds=0).capacity == 41


def test_free_slots_are_claimed_in_order_and_reclaims_refresh_value() -> None:
    table = SlotTable(3, min_hold_seconds=10)
    assert table.claim("A", 1.0, 0).slot.index == 0  # type: ignore[union-attr]
    assert table.claim("B", 1.0, 0).slot.index == 1  # type: ignore[union-attr]
    again = table.claim("A", 5.0, 1)
    assert again.outcome is ClaimOutcome.ALREADY_HELD
    assert again.slot is not None and again.slot.value == 5.0 and again.slot.claimed_at == 0
    assert again.slot.valued_at == 1
    assert table.allocated == 2


def test_full_table_evicts_least_valuable_after_min_hold() -> None:
    table = SlotTable(2, min_hold_seconds=10)
    table.claim("A", 2.0, 0)
    table.claim("B", 1.0, 0)
    assert table.claim("C", 3.0, 5).outcome is ClaimOutcome.REFUSED  # nobody held 10 s yet
    claim = table.claim("C", 3.0, 10)
    assert claim.outcome is ClaimOutcome.EVICTED_OTHER and claim.evicted == "B"
    assert claim.slot is not None and claim.slot.index == 1
    assert table.symbols() == ["A", "C"]


def test_a_newcomer_worth_no_more_than_every_holder_is_refused() -> None:
    table = SlotTable(1, min_hold_seconds=0)
    table.claim("A", 2.0, 0)
    assert table.claim("B", 2.0, 100).outcome is ClaimOutcome.REFUSED
    assert table.claim("B", 1.0, 100).outcome is ClaimOutcome.REFUSED
    assert "A" in table and "B" not in table


def test_release_frees_the_slot_for_the_next_claim() -> None:
    table = SlotTable(1, min_hold_seconds=1000)
    table.claim("A", 1.0, 0)
    assert table.release("A") is not None
    assert table.release("A") is None
    assert table.claim("B", 0.5, 1).outcome is ClaimOutcome.CLAIMED


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 41),
    st.lists(
        st.tuples(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), st.floats(0.1, 10), st.booleans()),
        max_size=200,
    ),
)
def test_never_above_capacity_and_indexes_unique(
    capacity: int, ops: list[tuple[str, float, bool]]
) -> None:
    table = SlotTable(capacity, min_hold_seconds=3)
    for now, (symbol, value, release) in enumerate(ops):
        if release:
            table.release(symbol)
        else:
            claim = table.claim(symbol, value, float(now))
            if claim.evicted is not None:
                assert claim.evicted not in table
        slots = table.slots()
        assert len(slots) <= capacity
        assert len({s.index for s in slots}) == len(slots)
        assert all(0 <= s.index < capacity for s in slots)


def test_a_holder_not_triggered_again_loses_value_every_hold_period() -> None:
    table = SlotTable(1, min_hold_seconds=10)
    table.claim("A", 8.0, 0)
    assert table.claim("B", 3.0, 10).outcome is ClaimOutcome.REFUSED  # A is worth 4 now
    claim = table.claim("B", 3.0, 20)  # A is worth 2 now
    assert claim.outcome is ClaimOutcome.EVICTED_OTHER and claim.evicted == "A"


def test_a_new_trigger_refreshes_a_holders_value() -> None:
    table = SlotTable(1, min_hold_seconds=10)
    table.claim("A", 8.0, 0)
    table.claim("A", 1.0, 20)  # worth max(2.0, 1.0) = 2.0 from t=20
    assert table.claim("B", 3.0, 20).outcome is ClaimOutcome.EVICTED_OTHER
