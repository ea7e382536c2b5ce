"""PostgreSQL going away under a running Observer, as a disk filling up does for SQLite.

The whole Observer (Track A, Track B, storage) runs against the simulator with its
records in a PostgreSQL cluster of its own; the cluster is stopped for 10 s during
sweeps (long enough for the write retries to back off to their cap) and started again on
the same port.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from observer.records import Recovery, Track
from observer.storage import StorageReader
from tests.faults.harness import system, until
from tests.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.slow
# The write retries wait 0.2, 0.4, … 3.2 s (RETRY_INITIAL_SECONDS doubling) and then the
# 5 s cap (RETRY_MAX_SECONDS): 10 s of outage sees the back-off reach its cap.
OUTAGE_SECONDS = 10.0


async def test_a_stopped_server_holds_records_and_writes_each_once_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = PostgresServer()  # not under tmp_path: the postgres user cannot enter it
    server.start()
    try:
        url = server.create_database("faults")
        async with system(tmp_path, store=url) as rig:
            await until(
                lambda: rig.value("observer_storage_rows_written_total", kind="snapshot") > 0,
                "snapshots stored",
            )
            assert rig.value("observer_storage_available") == 1
            await asyncio.to_thread(server.stop)
            await until(
                lambda: rig.value("observer_storage_write_errors_total", reason="unavailable") >= 1,
                "write errors counted as unavailable",
            )
            assert rig.value("observer_storage_available") == 0
            collected_at_stop = rig.value("observer_track_a_snapshots_total")
            await asyncio.sleep(OUTAGE_SECONDS)
            # Collection went on meanwhile; the records wait in the queue.
            assert rig.value("observer_track_a_snapshots_total") > collected_at_stop
            assert rig.value("observer_storage_queue_depth") > 0
            await asyncio.to_thread(server.start)
            await until(
                lambda: rig.value("observer_storage_available") == 1,
                "writes committed again",
                within_s=60,
            )
            await until(
                lambda: (
                    rig.value("observer_storage_rows_written_total", kind="snapshot")
                    >= rig.value("observer_track_a_snapshots_total")
                ),
                "every snapshot collected stored",
                within_s=60,
            )
            result = await rig.settled()
        written = rig.value("observer_storage_rows_written_total", kind="snapshot")
        with StorageReader(url) as reader:
            counts = reader.counts()
            distinct = reader.rows("SELECT COUNT(DISTINCT (symbol, collected_at)) FROM snapshots")
            assert counts.snapshots == next(iter(distinct))[0]  # no snapshot twice
            assert counts.snapshots == written >= rig.value("observer_track_a_snapshots_total")
            gap_symbols = {
                g.symbol
                for g in reader.gaps()
                if g.track is Track.B and g.recovery is not Recovery.FULL
            }
        assert result.invented == {}
        assert set(result.missing) <= gap_symbols, result
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "storage write failed" in logged and "reason=unavailable" in logged
        assert PASSWORD not in logged and PASSWORD not in caplog.text
    finally:
        server.destroy()
