"""Track A freshness: ages from the monotonic clock, stale gaps with their severity."""

from __future__ import annotations

import asyncio

from metrics.registry import Metrics
from observer.config import GapSettings, TrackASettings, TrackBSettings
from observer.limiter import RateLimiter
from observer.records import Gap, GapCause, Recovery, Severity, Snapshot, Track
from observer.track_a import MarketHours, TrackA, stale_snapshot_gap
from observer.triggers import TriggerDetector
from observer.universe import Universe
from tests.core.conftest import value


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.monotonic = 100.0


class Exchange:
    """Answers every symbol at the current (fake) wall time; an in-memory stand-in for REST."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks

    async def inquire_price(self, symbol: str, *, lane: str = "sweep") -> Snapshot:
        return Snapshot(
            symbol=symbol, collected_at=self.clocks.wall, price=1000, cumulative_volume=1
        )


class Sink:
    def __init__(self) -> None:
        self.records: list[Snapshot | Gap] = []

    async def put(self, record: Snapshot | Gap) -> None:
        self.records.append(record)


def track(metrics: Metrics, clocks: Clocks, sink: Sink) -> TrackA:
    universe = Universe(metrics)
    universe.replace(["000010", "000020"])
    return TrackA(
        client=Exchange(clocks),
        universe=universe,
        storage=sink,
        market=MarketHours(metrics, forced_open=True),
        settings=TrackASettings(expected_cadence_seconds=300.0),
        gaps=GapSettings(),
        detector=TriggerDetector(TrackBSettings()),
        metrics=metrics,
        concurrency=2,
        monotonic=lambda: clocks.monotonic,
    )


async def test_a_wall_clock_jump_is_not_a_gap(metrics: Metrics) -> None:
    clocks, sink = Clocks(), Sink()
    sweeper = track(metrics, clocks, sink)
    await sweeper.sweep()
    clocks.wall += 3600.0  # NTP step or a manual change
    clocks.monotonic += 1.0
    await sweeper.sweep()
    assert not [r for r in sink.records if isinstance(r, Gap)]
    assert value(metrics, "observer_track_a_freshness_checks_total", result="fresh") == 2


async def test_a_late_snapshot_closes_a_stale_gap(metrics: Metrics) -> None:
    clocks, sink = Clocks(), Sink()
    sweeper = track(metrics, clocks, sink)
    await sweeper.sweep()
    clocks.wall += 400.0
    clocks.monotonic += 400.0
    await sweeper.sweep()
    gaps = [r for r in sink.records if isinstance(r, Gap)]
    assert len(gaps) == 2
    assert {(g.track, g.cause, g.severity, g.recovery) for g in gaps} == {
        (Track.A, GapCause.STALE_SNAPSHOT, Severity.HIGH, Recovery.NOT_APPLICABLE)
    }
    assert gaps[0].end - gaps[0].start == 400.0
    assert value(metrics, "observer_gaps_detected_total", track="a", severity="high") == 2
    assert value(metrics, "observer_track_a_freshness_checks_total", result="stale") == 2


def test_stale_gap_rule_at_the_cadence() -> None:
    gaps = GapSettings()
    assert stale_snapshot_gap("x", 0.0, 300.0, cadence_seconds=300.0, gaps=gaps) is None
    gap = stale_snapshot_gap("x", 0.0, 300.5, cadence_seconds=300.0, gaps=gaps)
    assert gap is not None and gap.severity is Severity.HIGH
    low = stale_snapshot_gap("x", 0.0, 30.0, cadence_seconds=10.0, gaps=gaps)
    assert low is not None and low.severity is Severity.LOW


class SlowExchange(Exchange):
    def __init__(self, clocks: Clocks) -> None:
        super().__init__(clocks)
        self.active = 0
        self.most = 0

    async def inquire_price(self, symbol: str, *, lane: str = "sweep") -> Snapshot:
        self.active += 1
        self.most = max(self.most, self.active)
        await asyncio.sleep(0.005)
        self.active -= 1
        return await super().inquire_price(symbol, lane=lane)


async def test_calls_in_flight_follow_the_limit(metrics: Metrics) -> None:
    clocks, sink = Clocks(), Sink()
    universe = Universe(metrics)
    universe.replace([f"{n:06d}" for n in range(40)])
    exchange = SlowExchange(clocks)
    sweeper = TrackA(
        client=exchange,
        universe=universe,
        storage=sink,
        market=MarketHours(metrics, forced_open=True),
        settings=TrackASettings(),
        gaps=GapSettings(),
        detector=TriggerDetector(TrackBSettings()),
        metrics=metrics,
        concurrency=20,
        in_flight=lambda: 3,
    )
    result = await sweeper.sweep()
    assert result.collected == 40 and exchange.most == 3


def test_in_flight_need_follows_the_round_trips() -> None:
    limiter = RateLimiter(20.0)
    assert limiter.calls_in_flight_needed() == 22  # nothing measured yet: a second's worth
    schedule = limiter.schedule
    grant = schedule.grant(0.0)
    assert grant is not None
    schedule.mark_sent(grant, 0.0)
    schedule.mark_answered(grant, 0.2)  # a 200 ms round trip
    assert limiter.calls_in_flight_needed() == 8  # 20/s × (0.2 + 0.1) s + 2
