"""kill -9 of a cluster member: its share of the universe and its Track B slots go to the
survivors, and what nobody watched in between is a gap that gets backfilled.

Three ``observer run`` processes with three keys against one simulator and one
PostgreSQL; the simulator knows every trade it generated, so the audit can tell
a hole the store admits (a gap) from a silent one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from observer.credentials import Credentials, demo_credentials
from observer.records import Gap, GapCause, Recovery, Severity, Track
from observer.sim import SimExchange
from observer.storage import StorageReader
from tests.faults.harness import SIM, SYMBOLS, Audit, audit, scrape, until

pytestmark = pytest.mark.slow
CAPACITY = 12  # per key: 36 in the pool for 24 symbols, room left when one key is gone
WITHIN_S = 60.0
CONFIG = f"""\
rate_limit: {{rate_per_second: 100}}
track_a: {{sweep_when_closed: true}}
track_b:
  capacity: {CAPACITY}
  price_move_pct: 0.01
  volume_surge_ratio: 1.01
  min_hold_seconds: 0
  idle_timeout_seconds: 1.5
  reconnect_initial_seconds: 0.05
  reconnect_max_seconds: 0.5
storage: {{flush_interval_seconds: 0.05}}
cluster: {{enabled: true, rebalance_seconds: 1}}
"""


@dataclass
class Member:
    name: str
    credentials: Credentials
    process: asyncio.subprocess.Process
    url: str


@asynccontextmanager
async def member(
    sim: SimExchange, tmp_path: Path, name: str, database: str
) -> AsyncIterator[Member]:
    """``observer run`` as cluster member ``name`` with a key of its own."""
    config = tmp_path / "observer.yaml"
    config.write_text(CONFIG)
    credentials = demo_credentials(f"cluster-kill {name}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_"))}
    env |= {
        "KIS_APP_KEY": credentials.app_key,
        "KIS_APP_SECRET": credentials.app_secret,
        "OBSERVER_STORAGE__URL": database,
        "OBSERVER_CLUSTER__MEMBER_ID": name,
    }
    with (tmp_path / f"{name}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "observer", "run", "--provider", "kis",
            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--listen", "127.0.0.1:0",
            "--config", str(config), "--data-dir", str(tmp_path / name),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WITHIN_S)
        assert line.startswith(b"exporter_url "), line
        yield Member(name, credentials, process, line.decode().split()[1])
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), WITHIN_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def pool(database: str) -> dict[str, tuple[str, str | None]]:
    """``cluster_slots``: symbol -> (key fingerprint, holder)."""
    with StorageReader(database) as reader:
        rows = reader.rows("SELECT symbol, key_fingerprint, holder FROM cluster_slots")
        return {str(symbol): (str(key), holder) for symbol, key, holder in rows}


async def test_kill_9_moves_the_members_share_and_slots_to_the_survivors(
    tmp_path: Path, postgres_url: str
) -> None:
    async with SimExchange(SIM) as sim, AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        members = [
            await stack.enter_async_context(member(sim, tmp_path, f"m{i}", postgres_url))
            for i in range(3)
        ]
        keys = {m.credentials.fingerprint: m for m in members}

        def all_keys_hold() -> bool:
            held = pool(postgres_url).values()
            return {key for key, holder in held if holder is not None} == set(keys)

        await until(all_keys_hold, "every key holding slots", WITHIN_S)
        await until(lambda: audit(sim, postgres_url).trades > 200, "trades stored by all", WITHIN_S)
        before = pool(postgres_url)
        per_key = {key: [s for s, (k, _) in before.items() if k == key] for key in keys}
        victim_key = max(per_key, key=lambda key: len(per_key[key]))
        victim = keys[victim_key]
        lost = set(per_key[victim_key])
        survivors = [m for m in members if m is not victim]
        killed_at = time.time()
        os.kill(victim.process.pid, signal.SIGKILL)
        await victim.process.wait()

        def taken_over() -> bool:
            now = pool(postgres_url)
            return all(
                symbol in now and now[symbol][0] != victim_key and now[symbol][1] is not None
                for symbol in lost
            )

        # Room for all of them: each survivor's key has CAPACITY, the pool had 24 at most.
        await until(taken_over, "the dead member's subscriptions held by survivors", WITHIN_S)
        assert sim.key_stats(victim.credentials.app_key)["ws_sessions_open"] == 0

        async def owned() -> float:
            scraped = [await scrape(http, m.url) for m in survivors]
            return sum(samples.get("observer_cluster_symbols_owned", 0.0) for samples in scraped)

        deadline = asyncio.get_running_loop().time() + WITHIN_S
        while await owned() != SYMBOLS:
            assert asyncio.get_running_loop().time() < deadline, "survivors own the universe"
            await asyncio.sleep(0.2)

        def swept_since_the_kill() -> bool:
            with StorageReader(postgres_url) as reader:
                latest = list(
                    reader.rows("SELECT symbol, max(collected_at) FROM snapshots GROUP BY 1")
                )
                return len(latest) == SYMBOLS and all(float(at) > killed_at for _, at in latest)

        # The dead member's Track A share too: every symbol has a snapshot taken after the kill.
        await until(swept_since_the_kill, "the whole universe swept again", WITHIN_S)

        def handed_over() -> list[Gap]:
            with StorageReader(postgres_url) as reader:
                return [
                    gap
                    for gap in reader.gaps()
                    if gap.track is Track.B
                    and gap.cause is GapCause.SESSION_DROP
                    and gap.symbol in lost
                ]

        audited: list[Audit] = []

        def settled() -> bool:
            audited[:] = [audit(sim, postgres_url)]
            result = audited[0]
            return bool(handed_over()) and not result.missing and not result.pending_gaps

        # What nobody watched is a gap on the survivor (found by the symbol's first record
        # there), backfilled like any other.
        await until(settled, "the stretch stored as gaps and backfilled", WITHIN_S)
        for survivor in survivors:
            counts = sim.key_stats(survivor.credentials.app_key)
            assert 0 < counts["registrations_peak"] <= CAPACITY, counts
            assert counts["rejections"]["OPSP0008"] == 0, counts
            assert counts["rejections"]["EGW00201"] == 0, counts
        assert audited[0].invented == {}, audited  # nothing stored that was never traded
        gaps = handed_over()
        assert all(gap.recovery is not Recovery.PENDING for gap in gaps), gaps
        # Rated by the stretch nobody watched (seconds), not from the last stored trade.
        assert {gap.severity for gap in gaps} == {Severity.LOW}, gaps
        with StorageReader(postgres_url) as reader:
            distinct = next(
                iter(reader.rows("SELECT COUNT(DISTINCT (symbol, collected_at)) FROM snapshots"))
            )[0]
            assert distinct == reader.counts().snapshots  # no snapshot stored twice
