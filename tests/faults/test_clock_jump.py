"""Clock jumps: the wall clock of ``observer run`` steps 10 minutes forward, then back.

An NTP step or a resumed VM does this. libfaketime (Debian package ``faketime``)
shifts the process's wall clock through a file it re-reads, and leaves the
monotonic clock alone, as a real step does: the limiter, the WebSocket watchdog
and the back-off run on the monotonic clock and must not notice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from observer.credentials import demo_credentials
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.faults.harness import SIM, audit, scrape

pytestmark = pytest.mark.slow
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
CREDENTIALS = demo_credentials("faults-clock")
JUMP_S = 600
WITHIN_S = 60.0


async def wait_metric(http: aiohttp.ClientSession, url: str, name: str, floor: float) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while (await scrape(http, url)).get(name, 0.0) < floor:
        assert asyncio.get_running_loop().time() < deadline, f"{name} reaching {floor}"
        await asyncio.sleep(0.1)


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs libfaketime (apt-get install faketime)")
async def test_wall_clock_steps_forward_then_back(tmp_path: Path) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    config = tmp_path / "observer.yaml"
    config.write_text(
        "rate_limit: {rate_per_second: 100}\n"
        "track_a: {sweep_when_closed: true}\n"
        "track_b: {price_move_pct: 0.01, volume_surge_ratio: 1.01, min_hold_seconds: 0}\n"
        "storage: {flush_interval_seconds: 0.05}\n"
    )
    env = os.environ | {
        "KIS_APP_KEY": CREDENTIALS.app_key,
        "KIS_APP_SECRET": CREDENTIALS.app_secret,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_CACHE_DURATION": "0",  # read the offset file on every call: steps at once
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    database = tmp_path / "data" / "observer.sqlite"
    async with SimExchange(SIM) as sim, aiohttp.ClientSession() as http:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "observer", "run", "--provider", "kis",
            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--listen", "127.0.0.1:0",
            "--config", str(config), "--data-dir", str(tmp_path / "data"),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), WITHIN_S)
            url = line.decode().split()[1]
            await wait_metric(http, url, "observer_trackb_items_received_total", 200)
            before = await scrape(http, url)
            offset.write_text(f"+{JUMP_S}\n")  # ten minutes forward
            await wait_metric(
                http,
                url,
                "observer_track_a_sweeps_total",
                before["observer_track_a_sweeps_total"] + 3,
            )
            jumped = await scrape(http, url)
            offset.write_text("+0\n")  # and back
            await wait_metric(
                http,
                url,
                "observer_track_a_sweeps_total",
                jumped["observer_track_a_sweeps_total"] + 3,
            )
            await wait_metric(
                http,
                url,
                "observer_trackb_items_received_total",
                jumped["observer_trackb_items_received_total"] + 200,
            )
            after = await scrape(http, url)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), WITHIN_S) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        result = audit(sim, database)
    with StorageReader(database) as reader:
        gaps = reader.gaps()
    # Data kept flowing through both steps; nothing invented; the monotonic clocks did
    # not see the step (no watchdog reconnect, no limiter stall).
    assert result.invented == {}, result
    assert after.get("observer_trackb_reconnects_total", 0) == before.get(
        "observer_trackb_reconnects_total", 0
    )
    assert all(gap.end >= gap.start for gap in gaps)
    # Every trade kept, and no made-up ten-minute hole in the records.
    assert result.missing == {}, result
    assert [gap for gap in gaps if gap.duration_seconds >= JUMP_S / 2] == []
