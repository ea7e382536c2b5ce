"""Track B ingest: end-to-end frames and records per second vs the bare websockets receive rate.

A feeder process serves pre-built ``H0STCNT0`` frames (1 to 4 records each, 41
symbols, consistent cumulative volumes so no gap is found) as fast as it can on
loopback. The same frames are read twice:

- **bare**: a websockets client that only receives (the ceiling on this machine);
- **end-to-end**: ``TrackB`` with its real session, parser, gap rules, metrics
  and SQLite storage (time includes the final storage flush).

The ratio end-to-end / bare says what Observer's processing costs.

    .venv/bin/python bench/bench_ingest.py [--frames 40000] [--runs 3]

Each run measures both, one after the other, and prints its ratio; the last
line is every run's ratio and their median.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from metrics import catalog
from metrics.registry import Metrics, new_registry
from observer.backfill import Page
from observer.config import GapSettings, StorageSettings, TrackBSettings
from observer.gaps import GapWindow
from observer.kis import h0stcnt0
from observer.records import Gap, Trade, Trigger, TriggerKind
from observer.storage import Storage, StorageReader
from observer.track_b import TrackB

SYMBOLS = [f"{100000 + n * 7:06d}" for n in range(41)]


def build_frames(count: int) -> tuple[list[str], int]:
    """``count`` frames and the number of records they carry."""
    cumulative = dict.fromkeys(SYMBOLS, 0)
    frames: list[str] = []
    records = 0
    for n in range(count):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        fields: list[str] = []
        for k in range(1 + n % 4):
            volume = 1 + (n + k) % 50
            cumulative[symbol] += volume
            record = ["0"] * h0stcnt0.FIELD_COUNT
            second = n // 100
            record[0], record[1], record[2] = (
                symbol,
                f"09{second // 60 % 60:02d}{second % 60:02d}",
                "71500",
            )
            record[12], record[13], record[33] = str(volume), str(cumulative[symbol]), "20261124"
            fields.extend(record)
            records += 1
        frames.append(f"0|H0STCNT0|{1 + n % 4:03d}|" + "^".join(fields))
    return frames, records


def feeder(frame_count: int, port_out: Connection) -> None:
    """Child process: serve the frames to every connection, then hold it open."""
    frames, _ = build_frames(frame_count)

    async def handler(ws: ServerConnection) -> None:
        for frame in frames:
            await ws.send(frame)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            port_out.send(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


async def bare(url: str, frame_count: int) -> float:
    started = time.perf_counter()
    async with connect(url, ping_interval=None, compression=None, proxy=None) as ws:
        for _ in range(frame_count):
            await ws.recv()
    return time.perf_counter() - started


async def no_backfill(symbol: str, before: str, business_date: str) -> Page:
    raise AssertionError("the bench feed has no gaps: backfill must not run")


class CountingSink:
    """Storage, plus an event once ``expected`` trades went through it."""

    def __init__(self, storage: Storage, expected: int) -> None:
        self._storage = storage
        self._left = expected
        self.done = asyncio.Event()

    async def put(self, record: Trade | Gap | GapWindow) -> None:
        await self.put_many((record,))

    def put_many(self, records: Sequence[Trade | Gap | GapWindow]) -> Awaitable[None]:
        # Not a coroutine of its own: the caller awaits Storage.put_many directly, so
        # the bench adds no layer to the path it measures.
        if isinstance(records[0], Trade):  # a frame's trades (its gaps would come first)
            self._left -= len(records)
        else:
            self._left -= sum(1 for record in records if isinstance(record, Trade))
        if self._left <= 0:
            self.done.set()
        return self._storage.put_many(records)


async def end_to_end(url: str, records: int, database: Path) -> tuple[float, float]:
    """Seconds to ingest and store everything, and gaps detected (must be 0)."""
    registry = new_registry()
    metrics = Metrics(registry, version="bench")

    async def approval_key(renew: bool) -> str:
        return "bench-approval-key"

    storage_settings = StorageSettings(path=database)
    async with Storage(database, storage_settings, metrics=metrics) as storage:
        sink = CountingSink(storage, records)
        track = TrackB(
            TrackBSettings(min_hold_seconds=0),
            GapSettings(),
            ws_url=url,
            approval_key=approval_key,
            fetch_page=no_backfill,
            sink=sink,
            metrics=metrics,
        )
        for symbol in SYMBOLS:
            track.offer(Trigger(symbol=symbol, kind=TriggerKind.PRICE_MOVE, score=1.0, at=0.0))
        started = time.perf_counter()
        task = asyncio.create_task(track.run())
        await sink.done.wait()
        await storage.flush()
        elapsed = time.perf_counter() - started
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gaps = sum(
            sample.value
            for family in registry.collect()
            if family.name == catalog.GAPS_DETECTED.family
            for sample in family.samples
        )
    with StorageReader(database) as reader:
        stored = reader.counts().trades
    if stored != records:
        raise SystemExit(f"stored {stored} trades, expected {records}")
    return elapsed, gaps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3, help="bare + end-to-end pairs (median)")
    args = parser.parse_args(argv)
    _, records = build_frames(args.frames)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=feeder, args=(args.frames, sender), daemon=True)
    child.start()
    ratios: list[float] = []
    try:
        url = f"ws://127.0.0.1:{receiver.recv()}"
        print(f"frames {args.frames:,}, records {records:,}")
        for run in range(1, args.runs + 1):
            bare_s = asyncio.run(bare(url, args.frames))
            with tempfile.TemporaryDirectory() as tmp:
                e2e_s, gaps = asyncio.run(end_to_end(url, records, Path(tmp) / "bench.sqlite"))
            ratios.append(bare_s / e2e_s)
            print(f"run {run}: gaps detected {gaps:.0f}")
            for name, seconds in (
                ("bare websockets receive", bare_s),
                ("end-to-end Track B", e2e_s),
            ):
                per_s = (
                    f"{args.frames / seconds:10,.0f} frames/s {records / seconds:10,.0f} records/s"
                )
                print(f"  {name:24}: {per_s}")
            print(f"  ratio end-to-end / bare : {ratios[-1]:.3f}")
            sys.stdout.flush()
    finally:
        child.terminate()
        child.join()
    print(f"ratios {' '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
