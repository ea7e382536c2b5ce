"""Pure arithmetic and invariants: reconnect back-off, and the volume rule over random tapes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.config import GapSettings
from observer.gaps import TrackBGapDetector
from observer.kis.ws import Backoff
from tests.track_b.frames_util import trade


def test_backoff_grows_jittered_within_bounds_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30.0 and delays[-1] >= 15.0
    assert len(set(delays)) == len(delays)  # jittered: no two sessions retry in lock-step


def test_backoff_resets_only_when_told_and_refusals_wait_the_cap() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    assert backoff.longest() == 8.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_cap_below_initial_is_raised_to_initial() -> None:
    backoff = Backoff(2.0, 1.0, random.Random(1))
    assert 1.0 <= backoff.next_delay() <= 2.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.booleans()), min_size=1, max_size=80))
def test_detected_missing_volume_equals_dropped_volume(tape: list[tuple[int, bool]]) -> None:
    """Drop any records of a tape (never the first or last): the gaps found add up exactly."""
    detector = TrackBGapDetector(GapSettings(), silent_after_seconds=60)
    detector.registered("005930", 0.0)
    cumulative, dropped, found = 0, 0, 0
    for n, (volume, drop) in enumerate(tape):
        cumulative += volume
        if drop and 0 < n < len(tape) - 1:
            dropped += volume
            continue
        window = detector.observe(trade(volume=volume, cumulative=cumulative), float(n))
        if window is not None:
            assert window.gap.missing_volume is not None
            found += window.gap.missing_volume
    assert found == dropped
