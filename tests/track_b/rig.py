"""A running Track B against the simulated exchange: sim, KIS client, SQLite storage, TrackB."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from metrics import catalog
from metrics.catalog import MetricSpec
from metrics.registry import Metrics, new_registry
from observer.backfill import Page
from observer.config import GapSettings, SimSettings, StorageSettings, TrackBSettings
from observer.credentials import demo_credentials
from observer.kis.client import KisClient
from observer.kis.frames import ControlReply, FrameError
from observer.limiter import RateLimiter
from observer.records import Gap, Trade, Trigger, TriggerKind
from observer.sim import SimExchange
from observer.storage import Storage, StorageReader
from observer.track_b import TrackB

FAST_SIM = SimSettings(
    symbols=80,
    seed=1,
    always_open=True,
    speed=40.0,
    push_interval_seconds=0.05,
    start_at="2026-11-24 10:00:00",
)
FAST_TRACK_B = TrackBSettings(
    min_hold_seconds=0,
    idle_timeout_seconds=1.5,
    silent_symbol_seconds=600,
    reconnect_initial_seconds=0.05,
    reconnect_max_seconds=0.5,
)


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` every 20 ms; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    sim: SimExchange
    track: TrackB
    client: KisClient
    storage: Storage
    database: Path
    registry: CollectorRegistry
    metrics: Metrics

    def value(self, spec: MetricSpec, **labels: str) -> float:
        return self.registry.get_sample_value(spec.name, labels) or 0.0

    def total(self, spec: MetricSpec) -> float:
        return sum(
            sample.value
            for family in self.registry.collect()
            if family.name == spec.family
            for sample in family.samples
            if sample.name == spec.name
        )

    def trigger(self, symbol: str, score: float = 1.0) -> str:
        trigger = Trigger(symbol=symbol, kind=TriggerKind.PRICE_MOVE, score=score, at=time.time())
        return self.track.offer(trigger).value

    async def active_symbols(self, count: int, *, min_trades: int = 3) -> list[str]:
        """The ``count`` symbols that traded most so far (waits until they traded a little)."""
        codes = self.sim.universe_codes()

        def ranked() -> list[tuple[int, str]]:
            return sorted(((len(self.sim.generated_trades(c)), c) for c in codes), reverse=True)

        await wait_for(lambda: ranked()[count - 1][0] >= min_trades, "active symbols")
        return [code for _, code in ranked()[:count]]

    async def settled(self, symbols: list[str], *, after_cumulative: dict[str, int]) -> None:
        """Every symbol received a record beyond ``after_cumulative`` and backfill is idle."""
        await wait_for(
            lambda: (
                all(
                    (seen := self.track.detector.last_cumulative(s)) is not None
                    and seen > after_cumulative.get(s, -1)
                    for s in symbols
                )
                and not self.track.detector.open_gaps()
                and self.track.backfill_idle()
            ),
            "records after the fault and an idle backfill",
        )
        await self.storage.flush()

    def stored(self, symbol: str) -> list[Trade]:
        with StorageReader(self.database) as reader:
            return reader.trades(symbol)

    def gaps(self, symbol: str | None = None) -> list[Gap]:
        with StorageReader(self.database) as reader:
            return reader.gaps(symbol)

    def missing(self, symbol: str) -> list[Trade]:
        """Generated trades between the first and last stored ones that were not stored."""
        stored = self.stored(symbol)
        if not stored:
            return []
        have = {(t.key, t.time, t.price, t.volume) for t in stored}
        low = min(t.cumulative_volume for t in stored)
        high = max(t.cumulative_volume for t in stored)
        return [
            t
            for t in self.sim.generated_trades(symbol)
            if low <= t.cumulative_volume <= high and (t.key, t.time, t.price, t.volume) not in have
        ]


def providers(
    client: KisClient,
) -> tuple[Callable[[bool], Awaitable[str]], Callable[[str, str, str], Awaitable[Page]]]:
    """TrackB's approval-key provider and page fetcher, from a real KIS client."""

    async def approval_key(renew: bool) -> str:
        return await client.approval_key(renew=renew)

    async def fetch_page(symbol: str, before: str, business_date: str) -> Page:
        return await client.trades_by_time(symbol, before, business_date=business_date)

    return approval_key, fetch_page


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    sim_settings: SimSettings = FAST_SIM,
    track_b: TrackBSettings = FAST_TRACK_B,
    gaps: GapSettings | None = None,
) -> AsyncIterator[Rig]:
    """Sim + client + storage + a running TrackB; cancelled and closed on exit."""
    registry = new_registry()
    metrics = Metrics(registry, version="test")
    database = tmp_path / "observer.sqlite"
    storage_settings = StorageSettings(path=database, flush_interval_seconds=0.02)
    async with (
        SimExchange(sim_settings) as sim,
        aiohttp.ClientSession() as http,
        Storage(database, storage_settings, metrics=metrics) as storage,
    ):
        limiter = RateLimiter(sim_settings.rate_limit, metrics=metrics)
        client = KisClient(
            http, sim.rest_url, demo_credentials("track-b-test"), limiter=limiter, metrics=metrics
        )
        approval_key, fetch_page = providers(client)

        track = TrackB(
            track_b,
            gaps or GapSettings(),
            ws_url=sim.ws_url,
            approval_key=approval_key,
            fetch_page=fetch_page,
            sink=storage,
            metrics=metrics,
        )
        task = asyncio.create_task(track.run(), name="track-b-under-test")
        try:
            yield Rig(sim, track, client, storage, database, registry, metrics)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class Recorder:
    """A SessionListener that keeps what it is told."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.replies: list[ControlReply] = []
        self.records = 0
        self.connects = 0

    async def on_trades(self, trades: list[Trade]) -> None:
        self.records += len(trades)

    def on_malformed(self, error: FrameError) -> None:
        raise AssertionError(error)

    def on_connected(self) -> None:
        self.connects += 1

    def on_disconnected(self, reason: str) -> None:
        self.reasons.append(reason)

    def on_reply(self, reply: ControlReply) -> None:
        self.replies.append(reply)


def connected(rig: Rig, registrations: int) -> Callable[[], bool]:
    return lambda: rig.track.session.connected and rig.sim.stats()["registrations"] == registrations


__all__ = [
    "FAST_SIM",
    "FAST_TRACK_B",
    "Recorder",
    "Rig",
    "catalog",
    "connected",
    "running",
    "wait_for",
]
