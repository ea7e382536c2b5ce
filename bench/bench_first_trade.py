"""Time from ``observer run`` to its first stored Track B trade (the `make run` case).

Starts ``observer run`` as a subprocess with the embedded simulator (2,500
symbols, 20/s by default, a fresh data directory), then polls its SQLite file
until a trade row is there. Printed: seconds from the process start to the
exporter's URL, to the first stored trade, and whether Track A's first sweep
(about 125 s at 20/s) had ended by then. ``--runs`` repeats it.

    .venv/bin/python bench/bench_first_trade.py
    .venv/bin/python bench/bench_first_trade.py --runs 3 --symbols 2500
    .venv/bin/python bench/bench_first_trade.py --with-stack auto   # exactly `make run`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Run:
    served_seconds: float
    first_trade_seconds: float | None
    sweep_done_first: bool


def _has_trade(database: Path) -> bool:
    if not database.exists():
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1.0) as connection:
            return connection.execute("SELECT 1 FROM trades LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # not created yet, or locked for a moment
        return False


async def one_run(symbols: int, rate: float, timeout_seconds: float, with_stack: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="observer-first-trade-") as tmp:
        data_dir = Path(tmp)
        env = os.environ | {
            "OBSERVER_SIM__SYMBOLS": str(symbols),
            "OBSERVER_SIM__RATE_LIMIT": str(rate),
            "OBSERVER_RATE_LIMIT__RATE_PER_SECOND": str(rate),
        }
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "observer", "run", "--listen", "127.0.0.1:0"),
            *("--data-dir", str(data_dir), "--with-stack", with_stack),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        sweep_done = asyncio.Event()

        async def watch_log() -> None:
            assert process.stderr is not None
            async for line in process.stderr:
                if b" sweep done " in line:
                    sweep_done.set()

        watcher = asyncio.create_task(watch_log())
        first_trade: float | None = None
        try:
            await asyncio.wait_for(process.stdout.readline(), timeout=60)
            served = time.monotonic() - started
            database = data_dir / "observer.sqlite"
            while time.monotonic() - started < timeout_seconds:
                if _has_trade(database):
                    first_trade = time.monotonic() - started
                    break
                await asyncio.sleep(0.1)
            return Run(served, first_trade, sweep_done.is_set())
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), timeout=60)
            watcher.cancel()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=20.0, help="REST calls/s (sim and client)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=400.0, help="give up after, seconds")
    parser.add_argument(
        "--with-stack", choices=("never", "auto"), default="never", help="as observer run takes"
    )
    args = parser.parse_args()
    firsts: list[float] = []
    for index in range(args.runs):
        run = await one_run(args.symbols, args.rate, args.timeout, args.with_stack)
        first = "none" if run.first_trade_seconds is None else f"{run.first_trade_seconds:.2f} s"
        print(
            f"run {index + 1}: exporter served after {run.served_seconds:.2f} s, "
            f"first trade stored after {first}, "
            f"Track A's first sweep {'already' if run.sweep_done_first else 'not yet'} done",
            flush=True,
        )
        if run.first_trade_seconds is not None:
            firsts.append(run.first_trade_seconds)
    if not firsts:
        print(f"no trade stored within {args.timeout:g} s")
        return 1
    print(f"first trade stored: median {statistics.median(firsts):.2f} s over {len(firsts)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
