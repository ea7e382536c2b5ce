"""After a restart: the last stored trade of each symbol, from the store and in the gap rules."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from metrics.registry import Metrics, new_registry
from observer.config import GapSettings, StorageSettings
from observer.gaps import TrackBGapDetector, exchange_timestamp
from observer.records import GapCause, Severity
from observer.storage import Storage, StorageReader
from tests.track_b.frames_util import trade

GAPS = GapSettings(medium_after_seconds=60, high_after_seconds=300)
LAST = trade(volume=10, cumulative=1_000, time="093000")  # 2026-11-24 09:30:00 KST
LAST_AT = exchange_timestamp("20261124", "093000")
RESTARTED_AT = LAST_AT + 90.0  # the new process registers the symbol 90 s later


def resumed(symbol: str = "005930") -> TrackBGapDetector:
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0)
    d.registered(symbol, RESTARTED_AT)
    assert d.resume(symbol, LAST, RESTARTED_AT)
    return d


def test_exchange_time_is_kst() -> None:
    utc = dt.datetime(2026, 11, 24, 0, 30, tzinfo=dt.UTC)  # 09:30 KST is 00:30 UTC
    assert exchange_timestamp("20261124", "093000") == utc.timestamp() == 1_795_480_200.0


def test_first_record_after_a_restart_reveals_the_downtime_with_its_exact_volume() -> None:
    d = resumed()
    assert d.open_gaps() == {"005930": GapCause.SESSION_DROP}
    assert d.last_cumulative("005930") == 1_000
    window = d.observe(trade(volume=5, cumulative=1_130, time="093200"), RESTARTED_AT + 2.0)
    assert window is not None
    gap = window.gap
    assert gap.cause is GapCause.SESSION_DROP
    assert gap.missing_volume == 125  # 1130 - 5 - 1000
    assert (gap.start, gap.end) == (LAST_AT, RESTARTED_AT + 2.0)
    assert gap.severity is Severity.MEDIUM  # 92 s
    assert (window.business_date, window.after_cumulative, window.upto_cumulative) == (
        "20261124",
        1_000,
        1_125,
    )
    assert (window.before_time, window.since_time) == ("093200", "093000")
    assert d.open_gaps() == {}
    # The chain goes on from the new record: the next continuous one is no gap.
    assert d.observe(trade(volume=7, cumulative=1_137), RESTARTED_AT + 3.0) is None


def test_nothing_missed_over_the_restart_closes_with_zero_volume() -> None:
    d = resumed()
    window = d.observe(trade(volume=4, cumulative=1_004, time="093100"), RESTARTED_AT + 1.0)
    assert window is not None and window.gap.missing_volume == 0


def test_repeats_of_stored_trades_keep_the_gap_open() -> None:
    d = resumed()
    assert d.observe(trade(volume=10, cumulative=1_000), RESTARTED_AT + 1.0) is None
    assert d.open_gaps() == {"005930": GapCause.SESSION_DROP}


def test_a_record_of_another_business_day_drops_the_carried_gap() -> None:
    d = resumed()
    assert d.observe(trade(volume=5, cumulative=5, date="20261125"), RESTARTED_AT + 1.0) is None
    assert d.open_gaps() == {}


def test_only_a_watched_symbol_without_a_record_is_resumed() -> None:
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0)
    assert not d.resume("005930", LAST, RESTARTED_AT)  # not registered
    d.registered("005930", RESTARTED_AT)
    d.observe(trade(volume=1, cumulative=2_000), RESTARTED_AT + 1.0)
    assert not d.resume("005930", LAST, RESTARTED_AT + 2.0)  # a newer record is known
    assert d.last_cumulative("005930") == 2_000 and d.open_gaps() == {}


def test_start_is_never_after_the_registration() -> None:
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0)
    d.registered("005930", LAST_AT - 10.0)  # a clock behind the exchange's
    assert d.resume("005930", LAST, LAST_AT - 10.0)
    window = d.observe(trade(volume=1, cumulative=1_002, time="093001"), LAST_AT - 9.0)
    assert window is not None and window.gap.start == LAST_AT - 10.0


def test_a_short_restart_on_a_quiet_symbol_is_rated_by_its_downtime() -> None:
    """Issue 14 #14: the last trade was 20 min before a 3 s restart; the gap keeps its exact
    window (from that trade) but its severity is the 3 s Observer could not watch."""
    last_at = RESTARTED_AT - 20 * 60.0
    quiet = trade(volume=10, cumulative=1_000, time="091130")  # 20 min before RESTARTED_AT
    assert exchange_timestamp("20261124", "091130") == last_at
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0, previous_alive_at=RESTARTED_AT - 3.0)
    d.registered("005930", RESTARTED_AT)
    assert d.resume("005930", quiet, RESTARTED_AT)
    window = d.observe(trade(volume=5, cumulative=1_040, time="093131"), RESTARTED_AT + 1.0)
    assert window is not None
    gap = window.gap
    assert (gap.cause, gap.start, gap.end) == (GapCause.SESSION_DROP, last_at, RESTARTED_AT + 1.0)
    assert gap.missing_volume == 35 and window.after_cumulative == 1_000  # exact, as before
    assert gap.severity is Severity.LOW  # 4 s unwatched, not 20 min
    # Without the earlier process's last sign of life the whole stretch counts, as before.
    unknown = TrackBGapDetector(GAPS, silent_after_seconds=30.0)
    unknown.registered("005930", RESTARTED_AT)
    assert unknown.resume("005930", quiet, RESTARTED_AT)
    late = unknown.observe(trade(volume=5, cumulative=1_040, time="093131"), RESTARTED_AT + 1.0)
    assert late is not None and late.gap.severity is Severity.HIGH


def test_a_long_downtime_is_still_rated_by_its_length() -> None:
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0, previous_alive_at=LAST_AT - 50.0)
    d.registered("005930", RESTARTED_AT)
    assert d.resume("005930", LAST, RESTARTED_AT)  # alive before the last trade: from it
    window = d.observe(trade(volume=5, cumulative=1_130, time="093200"), RESTARTED_AT + 2.0)
    assert window is not None and window.gap.severity is Severity.MEDIUM  # 92 s
    later = TrackBGapDetector(GAPS, silent_after_seconds=30.0, previous_alive_at=LAST_AT + 60.0)
    later.registered("005930", RESTARTED_AT + 400.0)
    assert later.resume("005930", LAST, RESTARTED_AT + 400.0)
    gap = later.observe(trade(volume=5, cumulative=1_130), RESTARTED_AT + 401.0)
    assert gap is not None and gap.gap.severity is Severity.HIGH  # 431 s unwatched
    assert gap.gap.start == LAST_AT


def test_a_drop_in_the_new_session_is_rated_as_usual() -> None:
    d = TrackBGapDetector(GAPS, silent_after_seconds=30.0, previous_alive_at=RESTARTED_AT - 1.0)
    d.registered("005930", RESTARTED_AT)
    d.observe(trade(volume=1, cumulative=5), RESTARTED_AT + 1.0)
    d.session_lost(GapCause.SESSION_DROP, RESTARTED_AT + 2.0)
    window = d.observe(trade(volume=1, cumulative=7), RESTARTED_AT + 400.0)
    assert window is not None and window.gap.severity is Severity.HIGH


async def test_storage_remembers_when_its_last_writer_was_alive(tmp_path: Path) -> None:
    database = tmp_path / "observer.sqlite"
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    metrics = Metrics(new_registry(), version="test")
    before = time.time()
    async with Storage(database, settings, metrics=metrics) as storage:
        assert storage.previous_alive_at is None  # a new database
        await storage.put(trade(volume=1, cumulative=1))
        await storage.flush()
    closed = time.time()
    async with Storage(database, settings, metrics=metrics) as storage:
        alive = storage.previous_alive_at
        assert alive is not None and before <= alive <= closed  # the close marks it
        await storage.put(trade(volume=1, cumulative=2))  # a write of the new process ...
        await storage.flush()
        assert storage.previous_alive_at == alive  # ... leaves the earlier one as read
    with StorageReader(database) as reader:
        assert [row[0] for row in reader.rows("SELECT COUNT(*) FROM liveness")] == [1]


def test_silence_after_a_restart_is_measured_from_the_registration() -> None:
    d = resumed()
    assert d.last_activity("005930") == RESTARTED_AT
    assert d.check_silent(RESTARTED_AT + 29.0) == 0


async def test_storage_answers_each_symbols_latest_trade(tmp_path: Path) -> None:
    database = tmp_path / "observer.sqlite"
    settings = StorageSettings(path=database, flush_interval_seconds=0.01)
    metrics = Metrics(new_registry(), version="test")
    rows = [
        trade("005930", volume=5, cumulative=500, date="20261124"),
        trade("005930", volume=9, cumulative=90, time="090001", date="20261125"),
        trade("005930", volume=1, cumulative=81, time="090000", date="20261125"),
        trade("000660", volume=3, cumulative=300, date="20261124"),
        trade("000660", volume=2, cumulative=302, time="093016", date="20261124"),
    ]
    async with Storage(database, settings, metrics=metrics) as storage:
        assert await storage.last_trades() == {}
        for row in rows:
            await storage.put(row)
        await storage.flush()
        latest = await storage.last_trades()
        assert latest == {"005930": rows[1], "000660": rows[4]}
        assert await storage.last_trades(["000660", "035720"]) == {"000660": rows[4]}
    with StorageReader(database) as reader:
        assert reader.last_trades() == latest
