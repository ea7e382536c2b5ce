"""Acceptance against the simulator's faults: frame_drop, ws_drop, ws_stall, malformed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from observer.config import GapSettings
from observer.records import Gap, GapCause, Recovery, Track
from observer.severity import severity_for
from tests.track_b.rig import FAST_TRACK_B, Rig, catalog, connected, running, wait_for


async def start(rig: Rig, count: int) -> list[str]:
    symbols = await rig.active_symbols(count)
    for symbol in symbols:
        assert rig.trigger(symbol) == "claimed"
    await wait_for(connected(rig, count), "session registered")
    await wait_for(
        lambda: all(rig.track.detector.last_cumulative(s) is not None for s in symbols),
        "a first record of every symbol",
    )
    return symbols


def cumulative_now(rig: Rig, symbols: list[str]) -> dict[str, int]:
    return {s: rig.track.detector.last_cumulative(s) or 0 for s in symbols}


async def test_frame_drop_one_gap_exact_volume_backfilled(tmp_path: Path) -> None:
    gap_settings = GapSettings(medium_after_seconds=0.5, high_after_seconds=5.0)
    async with running(tmp_path, gaps=gap_settings) as rig:
        symbols = await start(rig, 3)
        target = symbols[0]
        await rig.sim.inject({"kind": "frame_drop", "symbol": target, "count": 3})
        await wait_for(lambda: rig.total(catalog.GAPS_DETECTED) >= 1, "the gap")
        await rig.settled(symbols, after_cumulative=cumulative_now(rig, symbols))
        gaps = rig.gaps()
        assert len(gaps) == 1, gaps
        gap = gaps[0]
        assert (gap.symbol, gap.track, gap.cause) == (target, Track.B, GapCause.VOLUME_JUMP)
        assert gap.missing_volume == rig.sim.stats()["volume_dropped"][target]
        assert gap.severity is severity_for(gap.end - gap.start, gap_settings)
        assert gap.recovery is Recovery.FULL
        assert rig.missing(target) == []
        backfilled = [t for t in rig.stored(target) if t.source == "backfill"]
        assert len(backfilled) == rig.sim.stats()["records_dropped"][target] == 3
        labels = {"track": "b", "severity": gap.severity.value, "cause": "volume_jump"}
        assert rig.value(catalog.GAPS_DETECTED, **labels) == 1
        assert rig.value(catalog.GAP_BACKFILLS, outcome="full") == 1


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_ws_drop_reconnects_restores_and_backfills_every_symbol(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await start(rig, 4)
        before = cumulative_now(rig, symbols)
        # Refused handshakes keep the session away long enough for trades to be missed.
        await rig.sim.inject({"kind": "refuse_ws", "seconds": 1.5})
        await rig.sim.inject({"kind": "ws_drop"})
        await wait_for(
            lambda: rig.value(catalog.TRACK_B_RECONNECTS, reason="drop") >= 1, "reconnect"
        )
        await wait_for(connected(rig, 4), "registrations restored")
        await rig.settled(symbols, after_cumulative=before)
        assert rig.value(catalog.TRACK_B_RECONNECTS, reason="error") >= 1  # refused handshakes
        gaps = rig.gaps()
        assert sorted(g.symbol for g in gaps) == sorted(symbols)
        assert {g.cause for g in gaps} == {GapCause.SESSION_DROP}
        assert all(g.recovery is Recovery.FULL for g in gaps), gaps
        assert sum(g.missing_volume or 0 for g in gaps) > 0
        for gap in gaps:
            backfilled = [t for t in rig.stored(gap.symbol) if t.source == "backfill"]
            assert sum(t.volume for t in backfilled) == gap.missing_volume
            assert rig.missing(gap.symbol) == [], gap.symbol
        assert rig.value(catalog.TRACK_B_SESSION_CONNECTED) == 1


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_stall_longer_than_idle_timeout_reconnects_and_records_gaps(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await start(rig, 4)
        before = cumulative_now(rig, symbols)
        await rig.sim.inject({"kind": "ws_stall", "seconds": 2.5})
        await wait_for(
            lambda: rig.value(catalog.TRACK_B_RECONNECTS, reason="idle") >= 1, "watchdog"
        )
        await rig.settled(symbols, after_cumulative=before)
        gaps = rig.gaps()
        assert sorted(g.symbol for g in gaps) == sorted(symbols)
        assert {g.cause for g in gaps} == {GapCause.SESSION_STALL}
        assert all(g.recovery is Recovery.FULL for g in gaps), gaps
        assert all(rig.missing(s) == [] for s in symbols)


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_stall_shorter_than_idle_timeout_changes_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await start(rig, 6)
        await rig.sim.inject({"kind": "ws_stall", "seconds": 0.4})
        frames = rig.total(catalog.TRACK_B_FRAMES_RECEIVED)
        idle = FAST_TRACK_B.idle_timeout_seconds
        quiet_until = time.monotonic() + 0.4 + 2 * idle
        await wait_for(
            lambda: (
                time.monotonic() > quiet_until
                and rig.total(catalog.TRACK_B_FRAMES_RECEIVED) > frames + 10
            ),
            "data flowing for twice the idle timeout after the stall",
        )
        await rig.settled(symbols, after_cumulative=cumulative_now(rig, symbols))
        assert rig.total(catalog.TRACK_B_RECONNECTS) == 0
        # Trades of a stall are never sent: a short one shows as volume jumps, filled.
        assert {g.cause for g in rig.gaps()} <= {GapCause.VOLUME_JUMP}
        assert all(g.recovery is Recovery.FULL for g in rig.gaps())


async def test_malformed_frames_are_counted_and_skipped(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await start(rig, 3)
        await rig.sim.inject({"kind": "malformed", "count": 6})
        await wait_for(
            lambda: rig.total(catalog.TRACK_B_FRAMES_MALFORMED) == 6, "six malformed frames"
        )
        await rig.settled(symbols, after_cumulative=cumulative_now(rig, symbols))
        assert rig.sim.stats()["malformed_sent"] == 6
        assert rig.total(catalog.GAPS_DETECTED) == 0
        assert rig.gaps() == []
        assert rig.total(catalog.TRACK_B_RECONNECTS) == 0
        assert rig.track.session.connected


async def test_a_silent_symbol_is_a_gap_closed_by_its_next_record(tmp_path: Path) -> None:
    track_b = FAST_TRACK_B.model_copy(update={"silent_symbol_seconds": 0.3})
    async with running(tmp_path, track_b=track_b) as rig:
        symbols = await start(rig, 3)

        def silent_gaps() -> list[Gap]:
            return [
                g
                for g in rig.gaps()
                if g.cause is GapCause.SILENT_SYMBOL
                and g.recovery is not Recovery.PENDING
                and g.missing_volume is not None  # silent after a first record, not before it
            ]

        await wait_for(lambda: bool(silent_gaps()), "a silent symbol's gap, backfilled")
        gap = silent_gaps()[0]
        assert gap.symbol in symbols
        assert gap.end - gap.start > 0.3
        assert (gap.missing_volume, gap.recovery) == (0, Recovery.FULL)  # quiet, nothing lost
        assert (
            rig.value(catalog.GAPS_DETECTED, track="b", severity="low", cause="silent_symbol") >= 1
        )
