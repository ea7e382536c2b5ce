"""The session against the simulator: slot limits, refusals, approval keys, scrape-time gauges."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from observer.config import TrackBSettings
from observer.kis.ws import TrackBSession
from tests.track_b.rig import FAST_TRACK_B, Recorder, catalog, connected, running, wait_for


async def test_sixty_triggers_never_exceed_41_registrations(tmp_path: Path) -> None:
    track_b = FAST_TRACK_B.model_copy(update={"min_hold_seconds": 0.0})
    async with running(tmp_path, track_b=track_b) as rig:
        codes = rig.sim.universe_codes()[:70]
        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, rig.sim.stats()["registrations"])
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        outcomes = [rig.trigger(code, score=1.0) for code in codes[:41]]
        outcomes += [rig.trigger(code, score=0.5) for code in codes[41:60]]
        await wait_for(connected(rig, 41), "41 registrations")
        # Ten more valuable symbols evict ten holders: unsubscribe goes out before subscribe.
        outcomes += [rig.trigger(code, score=3.0) for code in codes[60:70]]
        await wait_for(
            lambda: (
                set(rig.track.session.registered()) >= set(codes[60:70])
                and rig.sim.stats()["registrations"] == 41
                and rig.value(catalog.TRACK_B_SESSION_CONNECTED) == 1
            ),
            "evictions applied at the exchange",
        )
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        stats = rig.sim.stats()
        assert most <= 41
        assert stats["rejections"]["OPSP0008"] == 0
        assert outcomes.count("claimed") == 41
        assert outcomes.count("refused") == 19
        assert outcomes.count("evicted_other") == 10
        kind = "price_move"
        assert rig.value(catalog.TRACK_B_TRIGGERS, kind=kind, outcome="refused") == 19
        assert rig.value(catalog.TRACK_B_TRIGGERS, kind=kind, outcome="claimed") == 41
        assert rig.value(catalog.TRACK_B_EVICTIONS) == 10
        assert rig.value(catalog.TRACK_B_SLOTS_ALLOCATED) == 41
        assert rig.value(catalog.TRACK_B_SLOTS_CAPACITY) == 41


async def test_slot_idle_seconds_are_computed_at_scrape_time_per_slot(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await rig.active_symbols(2)
        for symbol in symbols:
            rig.trigger(symbol)
        await wait_for(connected(rig, 2), "registered")
        rig.track.release(symbols[0])
        rig.metrics.refresh()  # what the exporter does before every exposition
        text = generate_latest(rig.registry).decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = families[catalog.TRACK_B_SLOT_IDLE.name].samples
        assert [s.labels for s in samples] == [{"slot": "1"}]
        assert samples[0].value >= 0


async def test_a_second_session_for_the_same_key_backs_off_to_the_cap(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await rig.active_symbols(2)
        rig.trigger(symbols[0])
        await wait_for(connected(rig, 1), "first session registered")
        key = await rig.client.approval_key()

        async def same_key(renew: bool) -> str:
            return key

        recorder = Recorder()
        cap = 0.4
        second = TrackBSession(
            rig.sim.ws_url,
            approval_key=same_key,
            settings=TrackBSettings(reconnect_initial_seconds=0.01, reconnect_max_seconds=cap),
            listener=recorder,
            market_open=lambda: True,
        )
        second.register(symbols[1])
        started = time.monotonic()
        task = asyncio.create_task(second.run())
        await wait_for(lambda: len(recorder.reasons) >= 3, "three refusals")
        elapsed = time.monotonic() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert set(recorder.reasons) == {"refused"}
        assert elapsed >= 2 * cap  # the cap every time, not 0.01 s, 0.02 s, ...
        assert rig.sim.stats()["rejections"]["OPSP8996"] == len(recorder.reasons)
        assert rig.sim.stats()["registrations"] == 1  # the first session kept its slot
        assert rig.track.session.connected


async def test_invalid_approval_key_is_renewed_and_registrations_restored(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        symbols = await rig.active_symbols(3)
        asked: list[bool] = []

        async def stale_then_fresh(renew: bool) -> str:
            asked.append(renew)
            return await rig.client.approval_key(renew=True) if renew else "stale-approval-key"

        recorder = Recorder()
        session = TrackBSession(
            rig.sim.ws_url,
            approval_key=stale_then_fresh,
            settings=FAST_TRACK_B,
            listener=recorder,
            market_open=lambda: True,
        )
        for symbol in symbols:
            session.register(symbol)
        task = asyncio.create_task(session.run())
        await wait_for(
            lambda: recorder.records > 0 and recorder.connects == 2, "data after renewal"
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert asked == [False, True]
        assert recorder.reasons == ["approval"]
        assert {r.msg_cd for r in recorder.replies} >= {"OPSP0011", "OPSP0000"}
        assert rig.sim.stats()["rejections"]["OPSP8996"] == 0
