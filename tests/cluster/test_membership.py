"""Rendezvous hashing: every symbol has exactly one owner, and membership changes move little."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from observer.membership import owned, owner

SYMBOLS = [f"{i:06d}" for i in range(2500)]
MEMBERS = ["key-a", "key-b", "key-c"]


def split(members: list[str]) -> dict[str, frozenset[str]]:
    return {member: owned(SYMBOLS, members, member) for member in members}


def test_every_symbol_is_owned_by_exactly_one_member() -> None:
    shares = split(MEMBERS)
    assert sum(len(share) for share in shares.values()) == len(SYMBOLS)
    assert frozenset().union(*shares.values()) == frozenset(SYMBOLS)
    # Balanced within a few percent of a third each.
    assert all(
        abs(len(share) - len(SYMBOLS) / 3) < len(SYMBOLS) * 0.05 for share in shares.values()
    )


def test_a_leave_moves_only_the_leavers_symbols() -> None:
    before = split(MEMBERS)
    after = split(["key-a", "key-b"])
    for member in ("key-a", "key-b"):
        assert before[member] <= after[member]  # nobody loses what they had
    assert after["key-a"] | after["key-b"] == frozenset(SYMBOLS)


def test_a_join_takes_about_a_third_from_each() -> None:
    before = split(["key-a", "key-b"])
    after = split(MEMBERS)
    for member in ("key-a", "key-b"):
        assert after[member] <= before[member]  # only given away, never swapped
    assert abs(len(after["key-c"]) - len(SYMBOLS) / 3) < len(SYMBOLS) * 0.05


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True))
def test_any_member_list_splits_without_overlap(members: list[str]) -> None:
    shares = [owned(SYMBOLS[:200], members, member) for member in members]
    assert sum(len(share) for share in shares) == 200
    assert all(owner(symbol, members) in members for symbol in SYMBOLS[:20])
    assert owner("005930", []) is None
