"""Pure parts: KRX hours, universe filtering/sharding/counting, trigger detection."""

from __future__ import annotations

import datetime as dt

from metrics import catalog
from metrics.registry import Metrics
from observer.config import TrackBSettings
from observer.kis.master import MasterRow
from observer.market import KST, MarketCalendar
from observer.records import Snapshot, TriggerKind
from observer.triggers import TriggerDetector
from observer.universe import Universe, keep_shard, shard_index, share_codes


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=KST).timestamp()


def test_regular_session_weekdays_and_holidays() -> None:
    calendar = MarketCalendar()
    assert calendar.is_open(at("2026-11-24 09:00:00"))  # Tuesday
    assert calendar.is_open(at("2026-11-24 15:29:59"))
    assert not calendar.is_open(at("2026-11-24 15:30:00"))
    assert not calendar.is_open(at("2026-11-24 08:59:59"))
    assert not calendar.is_open(at("2026-11-28 10:00:00"))  # Saturday
    calendar.update({"20261124": False})
    assert not calendar.is_open(at("2026-11-24 10:00:00"))
    # Friday after the close → Monday 09:00.
    assert calendar.next_open(at("2026-11-27 16:00:00")) == at("2026-11-30 09:00:00")
    assert calendar.next_open(at("2026-11-25 08:00:00")) == at("2026-11-25 09:00:00")


def rows(*specs: tuple[str, str]) -> list[MasterRow]:
    return [MasterRow(code, "KR7" + code, "name", group, "kospi") for code, group in specs]


def test_shares_with_six_digit_codes_only() -> None:
    found = share_codes(rows(("005930", "ST"), ("069500", "EF"), ("Q50001", "ST"), ("1234", "ST")))
    assert found == {"005930"}


def test_shards_are_stable_and_partition_the_universe() -> None:
    codes = {f"{n:06d}" for n in range(1000)}
    parts = [keep_shard(codes, (index, 4)) for index in range(4)]
    assert set().union(*parts) == codes and sum(map(len, parts)) == 1000
    assert all(150 < len(part) < 350 for part in parts)
    assert shard_index("005930", 4) == shard_index("005930", 4)
    assert shard_index("005930", 7) == 4  # fixed by SHA-256, not by the process's hash seed


def test_first_load_counts_no_changes_later_loads_do(metrics: Metrics) -> None:
    universe = Universe(metrics)
    universe.replace(["000001", "000002", "000003"])
    assert metrics.counter(catalog.UNIVERSE_CREATED)._value.get() == 0
    change = universe.replace(["000002", "000003", "000004", "000005"])
    assert change.added == {"000004", "000005"} and change.removed == {"000001"}
    assert metrics.gauge(catalog.UNIVERSE_SIZE)._value.get() == 4
    assert metrics.counter(catalog.UNIVERSE_CREATED)._value.get() == 2
    assert metrics.counter(catalog.UNIVERSE_DELETED)._value.get() == 1
    assert universe.codes == ("000002", "000003", "000004", "000005")


def snap(price: int, volume: int, t: float) -> Snapshot:
    return Snapshot(symbol="005930", collected_at=t, price=price, cumulative_volume=volume)


def test_price_move_trigger_at_the_threshold() -> None:
    detector = TriggerDetector(TrackBSettings(price_move_pct=1.0))
    assert detector.observe(snap(10000, 100, 1)) == []
    assert detector.observe(snap(10099, 110, 2)) == []
    moved = detector.observe(snap(9997, 120, 3))
    assert [t.kind for t in moved] == [TriggerKind.PRICE_MOVE]
    assert moved[0].score >= 1.0


def test_volume_surge_needs_a_usual_first() -> None:
    detector = TriggerDetector(TrackBSettings(volume_surge_ratio=3.0))
    volume = 0
    for step in range(5):
        volume += 100
        assert detector.observe(snap(10000, volume, step)) == []
    volume += 299  # just under 3 × the usual 100
    assert detector.observe(snap(10000, volume, 6)) == []
    volume += 1000
    surged = detector.observe(snap(10000, volume, 7))
    assert [t.kind for t in surged] == [TriggerKind.VOLUME_SURGE]
    # A new business day (cumulative volume falls) starts over without a trigger.
    assert detector.observe(snap(10000, 10, 8)) == []
    assert detector.observe(snap(0, 0, 9)) == []
