"""Backfill's pure rules: which rows belong to a gap, when paging may stop, the verdict."""

from __future__ import annotations

from observer.backfill import in_window, judge, next_before, previous_second, reaches_start
from observer.config import GapSettings
from observer.gaps import GapWindow, TrackBGapDetector
from observer.records import Recovery
from tests.track_b.frames_util import trade


def jump_window() -> GapWindow:
    d = TrackBGapDetector(GapSettings(), silent_after_seconds=30)
    d.registered("005930", 0)
    d.observe(trade(volume=10, cumulative=100, time="093000"), 1)
    window = d.observe(trade(volume=5, cumulative=130, time="093005"), 2)
    assert window is not None
    return window


def test_rows_inside_the_volume_window_only() -> None:
    w = jump_window()  # missing: 100 < ACML_VOL <= 125
    assert in_window(w, trade(cumulative=110, volume=10))
    assert in_window(w, trade(cumulative=125, volume=15))
    assert not in_window(w, trade(cumulative=100))
    assert not in_window(w, trade(cumulative=130))
    assert not in_window(w, trade(cumulative=110, date="20261123"))


def test_paging_stops_once_it_reaches_the_last_seen_volume() -> None:
    w = jump_window()
    assert not reaches_start(w, [trade(cumulative=125), trade(cumulative=110)])
    assert reaches_start(w, [trade(cumulative=110), trade(cumulative=100)])


def test_verdicts() -> None:
    w = jump_window()
    full = [trade(cumulative=110, volume=10), trade(cumulative=125, volume=15)]
    assert judge(w, full, covered=True) is Recovery.FULL
    assert judge(w, full[:1], covered=True) is Recovery.PARTIAL
    assert judge(w, [], covered=True) is Recovery.NONE


def test_previous_second() -> None:
    assert previous_second("093000") == "092959"
    assert previous_second("100000") == "095959"
    assert previous_second("000000") is None


def test_next_page_asks_the_oldest_second_again_unless_it_was_all_of_the_page() -> None:
    rows = [trade(time="093005"), trade(time="093001")]
    assert next_before("093010", rows) == "093001"
    assert next_before("093001", [trade(time="093001")]) == "093000"
