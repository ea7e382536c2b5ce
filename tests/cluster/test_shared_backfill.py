"""Backfill as shared work: gaps claimed with SKIP LOCKED, claimed again when the claimer dies."""

from __future__ import annotations

import asyncio
import time

from metrics.registry import Metrics, new_registry
from observer.config import StorageSettings
from observer.gaps import GapWindow
from observer.records import Gap, GapCause, Recovery, Severity, Track
from observer.storage import Storage
from tests.cluster.test_members import Node


def pending(symbol: str, end: float) -> GapWindow:
    gap = Gap(
        symbol=symbol,
        track=Track.B,
        cause=GapCause.SESSION_DROP,
        start=end - 30,
        end=end,
        severity=Severity.MEDIUM,
        missing_volume=10,
        recovery=Recovery.PENDING,
    )
    return GapWindow(gap, "20261204", 100, 110, "101500", None)


async def store(url: str, windows: list[GapWindow]) -> None:
    settings = StorageSettings(flush_interval_seconds=0.02)
    async with Storage(url, settings, metrics=Metrics(new_registry(), version="t")) as storage:
        await storage.put_many(windows)


async def test_stale_gaps_are_claimed_once_and_again_when_the_claimer_dies(
    postgres_url: str,
) -> None:
    now = time.time()
    stale = [pending(f"{i:06d}", now - 300 + i) for i in range(3)]
    await store(postgres_url, [*stale, pending("999999", now)])  # the last one is fresh
    a, b = Node(postgres_url, "key-a", "a"), Node(postgres_url, "key-b", "b")
    await a.member.join()
    await b.member.join()
    claimed = await a.member.claim_gaps()
    assert claimed == stale  # oldest first, windows whole; the fresh gap stays its owner's
    assert await b.member.claim_gaps() == []  # held by a live member
    connection = a.member._connection
    assert connection is not None
    await connection.close()  # a dies with the gaps unfinished
    # The server ends a's backend (and its locks) a moment after the socket closes.
    again: list[GapWindow] = []
    for _ in range(100):
        again = await b.member.claim_gaps()
        if again:
            break
        await asyncio.sleep(0.05)
    assert again == stale
    await b.member.leave()


async def test_two_members_claiming_at_once_get_disjoint_gaps(postgres_url: str) -> None:
    now = time.time()
    windows = [pending(f"{i:06d}", now - 600 + i) for i in range(30)]
    await store(postgres_url, windows)
    a, b = Node(postgres_url, "key-a", "a"), Node(postgres_url, "key-b", "b")
    await a.member.join()
    await b.member.join()
    first, second = await asyncio.gather(a.member.claim_gaps(), b.member.claim_gaps())
    third = await a.member.claim_gaps() + await b.member.claim_gaps()
    keys = [w.gap.key for w in first + second + third]
    assert len(keys) == len(set(keys)) == 30
    await a.member.leave()
    await b.member.leave()


async def test_only_an_idle_backfill_adopts_gaps(postgres_url: str) -> None:
    now = time.time()
    await store(postgres_url, [pending("000001", now - 300)])
    node = Node(postgres_url, "key-a", "a")
    adopted: list[GapWindow] = []
    idle = [False]
    node.member.share_backfill(lambda: idle[0], adopted.extend)
    await node.member.join()  # join rebalances: busy, nothing adopted
    assert adopted == []
    idle[0] = True
    await node.member.rebalance()
    assert [w.gap.symbol for w in adopted] == ["000001"]
    await node.member.leave()


async def test_members_claiming_at_once_never_get_the_same_gap(postgres_url: str) -> None:
    """Claims racing each other, many times over: the claim row decides, so a member whose
    claim committed after another's statement began keeps its gaps."""
    now = time.time()
    await store(postgres_url, [pending(f"{i:06d}", now - 900 + i) for i in range(200)])
    nodes = [Node(postgres_url, f"key-{n}", f"m{n}") for n in range(3)]
    for node in nodes:
        await node.member.join()
    try:
        keys: list[tuple[str, str, str, float]] = []
        for _ in range(10):
            rounds = await asyncio.gather(*(node.member.claim_gaps() for node in nodes))
            keys += [w.gap.key for claimed in rounds for w in claimed]
        assert len(keys) == len(set(keys)) == 200
    finally:
        for node in nodes:
            await node.member.leave()
