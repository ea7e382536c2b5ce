"""Pure arithmetic and invariants: reconnect back-off, and the volume rule over random tapes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.registry import Metrics
from observer.backfill import Page
from observer.config import GapSettings, TrackBSettings
from observer.gaps import TrackBGapDetector
from observer.kis.ws_protocol import Backoff
from observer.records import Gap, Trade, Trigger, TriggerKind
from observer.track_b import STARVATION_REFUSALS, STORM_RECONNECTS, Burst, TrackB
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


def test_burst_reports_once_per_window_at_the_threshold() -> None:
    burst = Burst(3, 60.0)
    assert [burst.add(t) for t in (0.0, 10.0)] == [None, None]
    assert burst.add(20.0) == 3
    assert burst.add(30.0) is None  # reported already in this window
    assert burst.add(61.0) is None  # 10, 20, 30, 61 within 60 s, but reported at 20
    assert burst.add(80.5) == 3  # 30, 61, 80.5: a new window since the report at 20


class Reports:
    def __init__(self) -> None:
        self.starvation: list[tuple[int, int | None, int | None]] = []
        self.storms: list[tuple[int, str | None]] = []

    def slot_starvation(
        self, refused: int, window_s: float, *, capacity: int | None, allocated: int | None
    ) -> None:
        self.starvation.append((refused, capacity, allocated))

    def reconnect_storm(self, count: int, window_s: float, *, last_reason: str | None) -> None:
        self.storms.append((count, last_reason))


def test_refused_triggers_and_reconnects_are_reported_as_starvation_and_storms(
    metrics: Metrics,
) -> None:
    async def no_key(renew: bool) -> str:
        raise AssertionError("not connected in this test")

    async def no_page(symbol: str, before: str, business_date: str) -> Page:
        raise AssertionError("no backfill in this test")

    class Sink:
        async def put(self, record: Trade | Gap) -> None:
            raise AssertionError("nothing stored in this test")

    reports = Reports()
    now = [1000.0]
    track = TrackB(
        TrackBSettings(capacity=2, min_hold_seconds=60),
        GapSettings(),
        ws_url="ws://127.0.0.1:9",
        approval_key=no_key,
        fetch_page=no_page,
        sink=Sink(),
        metrics=metrics,
        clock=lambda: now[0],
        reporter=reports,
    )
    for n in range(2 + STARVATION_REFUSALS):
        track.offer(Trigger(symbol=f"{n:06d}", kind=TriggerKind.VOLUME_SURGE, score=1, at=0))
    assert reports.starvation == [(STARVATION_REFUSALS, 2, 2)]
    for _ in range(STORM_RECONNECTS):
        track.on_disconnected("drop")
    assert reports.storms == [(STORM_RECONNECTS, "drop")]
