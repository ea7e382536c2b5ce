"""The compact snapshot encoding gives back exactly what it was given, in few bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer import snapshot_codec
from observer.config import SimSettings
from observer.sim.quotes import PRICE_OUTPUT_FIELDS, price_output
from observer.sim.state import ExchangeState
from observer.snapshot_codec import SnapshotCodecError, decode, encode

field_names = st.one_of(st.sampled_from(PRICE_OUTPUT_FIELDS), st.text(max_size=20))


@given(st.dictionaries(field_names, st.text(max_size=40), max_size=100))
def test_any_answer_comes_back_exactly(fields: dict[str, str]) -> None:
    assert decode(encode(fields)) == fields


def sim_answers(count: int) -> list[dict[str, str]]:
    state = ExchangeState(SimSettings(always_open=True, start_at="2026-12-02 10:00:00"))
    now = state.clock.now()
    answers = []
    for i, code in enumerate(state.universe_codes()[:count]):
        process = state.model.process(code, now + i)
        assert process is not None
        answers.append(price_output(process))
    return answers


def test_a_simulator_answer_is_small_and_exact() -> None:
    answers = sim_answers(300)
    sizes = [len(encode(answer)) for answer in answers]
    assert all(decode(encode(answer)) == answer for answer in answers)
    # ~2 KB as JSON with its keys; the stored form must leave room under 1 KB a row.
    assert sum(sizes) / len(sizes) < 300


def test_the_simulator_answers_only_listed_fields() -> None:
    """Every field the simulator sends is in the current list (no per-row extras)."""
    answer = sim_answers(1)[0]
    assert list(answer) == list(snapshot_codec._CURRENT.fields)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x09abc", b"\x01not deflate", b"\x01" + b"\x00" * 8],
)
def test_damaged_bytes_are_a_clear_error(data: bytes) -> None:
    with pytest.raises(SnapshotCodecError):
        decode(data)


def test_a_wrong_shape_is_a_clear_error() -> None:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=snapshot_codec._CURRENT.dictionary)
    data = b"\x01" + packer.compress(b'["only one"]') + packer.flush()
    with pytest.raises(SnapshotCodecError, match="number of values"):
        decode(data)
