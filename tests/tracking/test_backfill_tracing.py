"""A Track B backfill against the simulated exchange arrives at Sentry as its own transaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import sentry_sdk

from metrics.registry import Metrics, new_registry
from observer.backfill import Backfiller, Page
from observer.config import GapSettings, StorageSettings
from observer.credentials import demo_credentials
from observer.gaps import TrackBGapDetector
from observer.kis.client import KisClient
from observer.limiter import RateLimiter
from observer.records import Recovery
from observer.sim import SimExchange
from observer.storage import Storage, StorageReader
from tests.track_b.rig import FAST_SIM
from tests.tracking.conftest import MakeTracking
from tests.tracking.sink import EnvelopeSink

CREDENTIALS = demo_credentials("backfill-tracing")


async def traded_symbol(sim: SimExchange, *, trades: int = 6, within_s: float = 30.0) -> str:
    """A symbol with at least ``trades`` generated trades (polled with a bound)."""
    deadline = time.monotonic() + within_s
    while True:
        for code in sim.universe_codes():
            if len(sim.generated_trades(code)) >= trades:
                return code
        assert time.monotonic() < deadline, "no symbol traded"
        await asyncio.sleep(0.05)


def backfills(sink: EnvelopeSink) -> list[dict[str, object]]:
    return [t for t in sink.items("transaction") if t.get("transaction") == "backfill"]


async def test_a_backfill_is_a_transaction_with_its_gap_and_recovery(
    sink: EnvelopeSink, make_tracking: MakeTracking, tmp_path: Path
) -> None:
    make_tracking(traces_sample_rate=1.0)
    metrics = Metrics(new_registry(), version="test")
    database = tmp_path / "observer.sqlite"
    storage_settings = StorageSettings(path=database, flush_interval_seconds=0.02)
    async with (
        SimExchange(FAST_SIM) as sim,
        aiohttp.ClientSession() as http,
        Storage(database, storage_settings, metrics=metrics) as storage,
    ):
        client = KisClient(
            http,
            sim.rest_url,
            CREDENTIALS,
            limiter=RateLimiter(FAST_SIM.rate_limit, metrics=metrics),
            metrics=metrics,
        )

        async def fetch_page(symbol: str, before: str, business_date: str) -> Page:
            return await client.trades_by_time(symbol, before, business_date=business_date)

        symbol = await traded_symbol(sim)
        generated = sim.generated_trades(symbol)
        first, last = generated[0], generated[-1]
        detector = TrackBGapDetector(GapSettings(), silent_after_seconds=600)
        detector.registered(symbol, 0.0)
        detector.observe(first, 1.0)
        window = detector.observe(last, 2.0)  # everything in between is a volume jump
        assert window is not None and window.gap.missing_volume
        filled = await Backfiller(fetch_page, storage, metrics=metrics).fill(window)
        await storage.flush()
    assert filled.gap.recovery is Recovery.FULL
    with StorageReader(database) as reader:
        assert [t.key for t in reader.trades(symbol)] == [t.key for t in generated[1:-1]]

    await asyncio.to_thread(sentry_sdk.flush)
    sink.wait_for(lambda s: bool(backfills(s)))
    (transaction,) = backfills(sink)
    trace = transaction["contexts"]["trace"]  # type: ignore[index]
    assert trace["op"] == "track_b.backfill"
    assert trace.get("status", "ok") == "ok"  # not failed
    data = trace["data"]
    assert data["symbol"] == symbol
    assert data["cause"] == "volume_jump"
    assert data["business_date"] == first.business_date
    assert (data["after_cumulative"], data["upto_cumulative"]) == (
        first.cumulative_volume,
        last.cumulative_volume - last.volume,
    )
    assert data["missing_volume"] == window.gap.missing_volume
    assert (data["rows"], data["recovery"]) == (len(generated) - 2, "full")
    spans = transaction["spans"]
    assert isinstance(spans, list)
    pages = [s for s in spans if "inquire-time-itemconclusion" in s.get("description", "")]
    assert pages and all(s["op"] == "http.client" for s in pages)  # each page inside it
    assert CREDENTIALS.app_key not in str(transaction)
    assert CREDENTIALS.app_secret not in str(transaction)
