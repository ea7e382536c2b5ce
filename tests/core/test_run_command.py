"""``observer run`` with no configuration: embedded simulator, /metrics, ready, SIGINT → 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from observer.storage import StorageReader

PROGRESS_LINE = " info observer.progress progress sweep="

pytestmark = pytest.mark.slow


async def test_default_run_observes_the_embedded_simulator(tmp_path: Path) -> None:
    env = os.environ | {"OBSERVER_SIM__SYMBOLS": "40", "OBSERVER_RATE_LIMIT__RATE_PER_SECOND": "40"}
    env = env | {"OBSERVER_SIM__RATE_LIMIT": "40"}
    env = env | {"OBSERVER_EXPORTER__LINKS__GRAFANA": "http://127.0.0.1:3000"}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "observer", "run", "--listen", "127.0.0.1:0"),
        *("--data-dir", str(tmp_path)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        key, _, url = line.decode().strip().partition(" ")
        assert key == "exporter_url"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/metrics") as response:
                assert response.status == 200
                assert "observer_universe_size" in await response.text()
            served_after = time.monotonic() - started
            ready = 0
            for _ in range(600):
                async with http.get(url + "/readyz") as response:
                    ready = response.status
                if ready == 200:
                    break
                await asyncio.sleep(0.05)
            assert ready == 200
            async with http.get(url + "/api/summary") as response:
                links = (await response.json())["links"]  # the status page's, as configured
            assert links["grafana"] == "http://127.0.0.1:3000"
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    errors = (await process.stderr.read()).decode()
    assert code == 0, errors
    assert "stopped cleanly" in errors and "Traceback" not in errors
    for line in errors.splitlines():
        # One structured line per event: "<UTC time> <level> <logger> <message>".
        assert line[:4].isdigit() and line.split(" ")[1] in {"info", "warning"}, line
    with StorageReader(tmp_path / "observer.sqlite") as reader:
        assert reader.counts().snapshots >= 40
    # Loose bound on a shared machine; `make run` on an idle one serves in well under 5 s.
    assert served_after < 30


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value of every sample in an exposition."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


async def test_first_trade_is_stored_before_the_first_sweep_ends(tmp_path: Path) -> None:
    """`make run`'s case (embedded simulator, 2,500 symbols, 20/s): Track B is seeded from
    the volume ranking, so a trade is stored while Track A's first sweep (about 125 s)
    is still running, not after its second look at every symbol."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "observer", "run", "--listen", "127.0.0.1:0"),
        *("--data-dir", str(tmp_path)),
        env=os.environ | {"OBSERVER_LOG__PROGRESS_SECONDS": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    logged: list[str] = []
    progressed = asyncio.Event()

    async def read_log(stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            logged.append(raw.decode())
            if PROGRESS_LINE in logged[-1]:
                progressed.set()

    stderr = asyncio.create_task(read_log(process.stderr))
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        url = line.decode().strip().partition(" ")[2]
        trades_key = 'observer_storage_rows_written_total{kind="trade"}'
        async with aiohttp.ClientSession() as http:
            for _ in range(2400):  # a bound far past the sweep: the assertion decides
                async with http.get(url + "/metrics") as response:
                    scraped = _samples(await response.text())
                if scraped.get(trades_key, 0) > 0:
                    break
                await asyncio.sleep(0.05)
        assert scraped.get(trades_key, 0) > 0, "no trade stored"
        # The same scrape: the sweep had not ended when the trade was counted.
        assert scraped["observer_track_a_sweeps_total{}"] == 0
        assert scraped['observer_trackb_triggers_total{kind="volume_rank",outcome="claimed"}'] > 0
        # The trade may come within a second: wait for a progress line (one a second here).
        await asyncio.wait_for(progressed.wait(), timeout=30)
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    await stderr
    errors = "".join(logged)
    assert code == 0, errors
    assert "track B seeded from the volume ranking" in errors
    assert PROGRESS_LINE in errors
    assert " info observer.track_b slot claimed symbol=" in errors
    with StorageReader(tmp_path / "observer.sqlite") as reader:
        assert reader.counts().trades > 0
