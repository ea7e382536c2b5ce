"""Pure Track B gap rules and their severity (observer.severity)."""

from __future__ import annotations

from observer.config import GapSettings
from observer.gaps import TrackBGapDetector
from observer.records import GapCause, Severity, Track
from tests.track_b.frames_util import trade

GAPS = GapSettings(medium_after_seconds=60, high_after_seconds=300)


def detector(silent: float = 30.0) -> TrackBGapDetector:
    d = TrackBGapDetector(GAPS, silent_after_seconds=silent)
    d.registered("005930", 0.0)
    return d


def test_continuous_volume_is_no_gap() -> None:
    d = detector()
    assert d.observe(trade(volume=10, cumulative=100), 1.0) is None
    assert d.observe(trade(volume=5, cumulative=105), 2.0) is None
    assert d.open_gaps() == {}


def test_volume_jump_gives_the_exact_missing_volume() -> None:
    d = detector()
    d.observe(trade(volume=10, cumulative=100, time="093000"), 1.0)
    window = d.observe(trade(volume=5, cumulative=142, time="093002"), 2.5)
    assert window is not None
    gap = window.gap
    assert (gap.symbol, gap.track, gap.cause) == ("005930", Track.B, GapCause.VOLUME_JUMP)
    assert gap.missing_volume == 37  # 142 - 5 - 100
    assert (gap.start, gap.end, gap.severity) == (1.0, 2.5, Severity.LOW)
    assert (window.after_cumulative, window.upto_cumulative) == (100, 137)
    assert (window.before_time, window.since_time) == ("093002", "093000")


def test_repeats_and_unwatched_symbols_change_nothing() -> None:
    d = detector()
    d.observe(trade(volume=10, cumulative=100), 1.0)
    assert d.observe(trade(volume=10, cumulative=100), 2.0) is None
    assert d.observe(trade(volume=10, cumulative=90), 2.0) is None
    assert d.observe(trade("000660", volume=1, cumulative=999), 2.0) is None
    assert d.observe(trade(volume=10, cumulative=110), 3.0) is None


def test_a_new_business_day_restarts_the_chain() -> None:
    d = detector()
    d.observe(trade(volume=10, cumulative=100_000), 1.0)
    assert d.observe(trade(volume=10, cumulative=50, date="20261125"), 2.0) is None


def test_session_drop_opens_one_gap_per_watched_symbol_closed_by_its_next_record() -> None:
    d = detector()
    d.registered("000660", 0.0)
    d.observe(trade(volume=10, cumulative=100), 10.0)
    assert d.session_lost(GapCause.SESSION_DROP, 11.0) == 2
    assert d.session_lost(GapCause.SESSION_STALL, 12.0) == 0  # already open: start kept
    assert set(d.open_gaps()) == {"005930", "000660"}
    window = d.observe(trade(volume=10, cumulative=110), 80.0)
    assert window is not None
    assert window.gap.cause is GapCause.SESSION_DROP
    assert (window.gap.start, window.gap.end) == (10.0, 80.0)
    assert window.gap.severity is Severity.MEDIUM
    assert window.gap.missing_volume == 0  # nothing traded while away: backfill says full
    other = d.observe(trade("000660", volume=3, cumulative=40, time="093100"), 400.0)
    assert other is not None and other.gap.severity is Severity.HIGH
    assert other.after_cumulative is None and other.upto_cumulative == 37
    assert other.since_time == "093015"  # the session's latest exchange time before the drop


def test_silent_symbol_after_threshold_only() -> None:
    d = detector(silent=30.0)
    d.observe(trade(volume=10, cumulative=100), 5.0)
    assert d.check_silent(35.0) == 0
    assert d.check_silent(35.5) == 1
    assert d.check_silent(40.0) == 0
    window = d.observe(trade(volume=10, cumulative=150), 50.0)
    assert window is not None and window.gap.cause is GapCause.SILENT_SYMBOL
    assert window.gap.missing_volume == 40


def test_unregistering_with_an_open_gap_closes_it_unbounded() -> None:
    d = detector()
    d.observe(trade(volume=10, cumulative=100), 1.0)
    d.session_lost(GapCause.SESSION_DROP, 2.0)
    window = d.unregistered("005930", 9.0)
    assert window is not None and window.upto_cumulative is None and window.gap.end == 9.0
    assert d.unregistered("005930", 9.0) is None


def test_silence_is_measured_again_after_the_market_was_closed() -> None:
    d = detector(silent=30.0)
    d.observe(trade(volume=10, cumulative=100), 5.0)
    d.market_closed(1000.0)  # overnight: nothing traded, nothing is due
    assert d.check_silent(1020.0) == 0
    assert d.check_silent(1030.5) == 1
