"""The whole of Observer (ObserverApp: Track A, Track B, storage) against the simulator, for faults.

``system(tmp_path)`` runs both in-process on a small fast market (24 symbols at
40 simulated seconds per second, every symbol subscribed); ``System.audit()``
checks what the store holds against what the simulator generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from metrics.registry import Metrics, new_registry
from observer.config import ObserverSettings
from observer.credentials import demo_credentials
from observer.readiness import Readiness
from observer.records import Recovery
from observer.runtime import COMPONENTS, ComponentFactory, Endpoint, ObserverApp
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.core.conftest import observer_settings, sim_settings, value

SYMBOLS = 24
SIM = sim_settings(
    symbols=SYMBOLS,
    speed=40.0,
    push_interval_seconds=0.05,
    start_at="2026-11-24 10:00:00",
    rate_limit=400.0,
    token_min_interval_seconds=1.0,
)


def settings_for(tmp_path: Path, store: Path | str | None = None) -> ObserverSettings:
    """The fault settings; ``store`` a PostgreSQL URL puts the records there."""
    storage = {"url": store} if isinstance(store, str) else {}
    return observer_settings(
        tmp_path,
        storage=storage,
        track_a={"retries": 1},
        # Thresholds low enough that every symbol claims a slot within a sweep or two.
        track_b={
            "price_move_pct": 0.01,
            "volume_surge_ratio": 1.01,
            "min_hold_seconds": 0.0,
            "idle_timeout_seconds": 1.5,
            "reconnect_initial_seconds": 0.05,
            "reconnect_max_seconds": 0.5,
        },
    )


async def until(condition: Callable[[], bool], what: str, within_s: float = 30.0) -> None:
    """Poll ``condition`` every 50 ms; AssertionError naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every sample of ``url``/metrics summed by name (labels folded together)."""
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


@dataclass
class Audit:
    trades: int
    symbols_with_trades: int
    missing: dict[str, int]  # generated trades inside a symbol's stored range, not stored
    invented: dict[str, int]  # stored trades the simulator never generated
    unrecovered_gaps: int  # Track B gaps with a known missing volume, not fully backfilled
    pending_gaps: int


def audit(sim: SimExchange, database: Path | str) -> Audit:
    """What ``database`` holds against what ``sim`` generated."""
    with StorageReader(database) as reader:
        symbols = [row[0] for row in reader.rows("SELECT DISTINCT symbol FROM trades")]
        stored = {symbol: reader.trades(symbol) for symbol in symbols}
        gaps = [g for g in reader.gaps() if g.track.value == "b"]
    missing: dict[str, int] = {}
    invented: dict[str, int] = {}
    for symbol, trades in stored.items():
        have = {(t.key, t.time, t.price, t.volume) for t in trades}
        generated = {(t.key, t.time, t.price, t.volume) for t in sim.generated_trades(symbol)}
        low = min(t.cumulative_volume for t in trades)
        high = max(t.cumulative_volume for t in trades)
        inside = {g for g in generated if low <= g[0][2] <= high}
        if lost := len(inside - have):
            missing[symbol] = lost
        if extra := len(have - generated):
            invented[symbol] = extra
    return Audit(
        trades=sum(len(t) for t in stored.values()),
        symbols_with_trades=len(stored),
        missing=missing,
        invented=invented,
        unrecovered_gaps=sum(
            1 for g in gaps if g.missing_volume is not None and g.recovery is not Recovery.FULL
        ),
        pending_gaps=sum(1 for g in gaps if g.recovery is Recovery.PENDING),
    )


@dataclass
class System:
    sim: SimExchange
    metrics: Metrics
    database: Path | str

    def value(self, name: str, **labels: str) -> float:
        return value(self.metrics, name, **labels)

    def registrations(self) -> int:
        return int(self.sim.stats()["registrations"])

    def audit(self) -> Audit:
        return audit(self.sim, self.database)

    async def settled(self, within_s: float = 30.0) -> Audit:
        """Wait until every hole is backfilled (or the bound passes); the last audit."""
        last: list[Audit] = []

        def clean() -> bool:
            last[:] = [self.audit()]
            audit = last[0]
            return not audit.missing and not audit.pending_gaps and not audit.unrecovered_gaps

        with contextlib.suppress(AssertionError):
            await until(clean, "backfill to settle", within_s)
        return last[0]

    async def flowing(self, more_frames: int = 5) -> None:
        """Trade frames arrive again (after a fault): ``more_frames`` beyond now."""
        frames = self.value("observer_trackb_frames_received_total")
        await until(
            lambda: self.value("observer_trackb_frames_received_total") >= frames + more_frames,
            "trade frames flowing",
        )


@contextlib.asynccontextmanager
async def system(
    tmp_path: Path,
    *,
    label: str = "faults",
    components: tuple[ComponentFactory, ...] = COMPONENTS,
    store: Path | str | None = None,
) -> AsyncIterator[System]:
    """Sim + ObserverApp, every symbol subscribed and trading before the test starts;
    records in ``store`` (a PostgreSQL URL) or the SQLite file under ``tmp_path``."""
    metrics = Metrics(new_registry(), version="test")
    settings = settings_for(tmp_path, store)
    async with SimExchange(SIM) as sim:
        endpoint = Endpoint(sim.rest_url, sim.ws_url, demo_credentials(label), always_open=True)
        app = ObserverApp(
            settings, endpoint, metrics=metrics, readiness=Readiness(), components=components
        )
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            rig = System(sim, metrics, settings.storage_target)
            await until(lambda: rig.registrations() >= SYMBOLS // 2 or task.done(), "subscribed")
            assert not task.done(), "Observer stopped on its own"
            await rig.flowing()
            yield rig
            assert not task.done(), "Observer stopped on its own"
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
