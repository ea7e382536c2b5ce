"""Membership through a real PostgreSQL: key ownership, standby take-over, the split, the leader."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from metrics import catalog
from metrics.registry import Metrics, new_registry
from observer.cluster import ClusterMember
from observer.config import ClusterSettings
from observer.readiness import Readiness
from observer.universe import Universe

SYMBOLS = [f"{i:06d}" for i in range(300)]
SETTINGS = ClusterSettings(enabled=True, rebalance_seconds=0.2)


class Node:
    def __init__(self, url: str, key: str, name: str) -> None:
        self.metrics = Metrics(new_registry(), version="t")
        self.universe = Universe(self.metrics)
        self.universe.replace(SYMBOLS)
        self.readiness = Readiness()
        self.member = ClusterMember(
            SETTINGS,
            url,
            password=None,
            key_fingerprint=key,
            universe=self.universe,
            metrics=self.metrics,
            readiness=self.readiness,
            member_id=name,
        )

    def gauge(self, spec: catalog.MetricSpec) -> float:
        return float(self.metrics.gauge(spec)._value.get())


@contextlib.asynccontextmanager
async def running(node: Node) -> AsyncIterator[asyncio.Task[None]]:
    """``node`` joined (owner of its key) and rebalancing in the background."""
    await node.member.join()
    await node.member.start_sweeping()
    task = asyncio.create_task(node.member.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await node.member.leave()


async def settle(*nodes: Node) -> None:
    for node in nodes:
        await node.member.rebalance()


async def test_three_keys_split_the_universe_without_overlap(postgres_url: str) -> None:
    nodes = [Node(postgres_url, f"key{i}", f"member-{i}") for i in range(3)]
    async with running(nodes[0]), running(nodes[1]), running(nodes[2]):
        await settle(*nodes)
        shares = [set(node.universe.codes) for node in nodes]
        assert sum(len(share) for share in shares) == len(SYMBOLS)
        assert set().union(*shares) == set(SYMBOLS)
        assert [node.gauge(catalog.CLUSTER_MEMBERS) for node in nodes] == [3, 3, 3]
        assert [node.gauge(catalog.CLUSTER_SYMBOLS_OWNED) for node in nodes] == [
            len(share) for share in shares
        ]
        assert sum(node.gauge(catalog.CLUSTER_LEADER) for node in nodes) == 1
        assert nodes[0].universe.listed == tuple(SYMBOLS)  # the universe itself is whole


async def test_a_dead_members_symbols_go_to_the_survivors(postgres_url: str) -> None:
    a, b, c = (Node(postgres_url, f"key{i}", f"member-{i}") for i in range(3))
    async with running(a), running(b):
        await c.member.join()
        await c.member.start_sweeping()
        await settle(a, b, c)
        lost = set(c.universe.codes)
        assert lost
        # Killed: its connection goes away without a goodbye; the server drops its locks.
        connection = c.member._connection
        assert connection is not None
        await connection.close()
        # The server ends c's backend (and its lock) a moment after the socket closes.
        for _ in range(100):
            await settle(a, b)
            if a.gauge(catalog.CLUSTER_MEMBERS) == 2 and b.gauge(catalog.CLUSTER_MEMBERS) == 2:
                break
            await asyncio.sleep(0.05)
        assert set(a.universe.codes) | set(b.universe.codes) == set(SYMBOLS)
        assert not set(a.universe.codes) & set(b.universe.codes)
        assert a.gauge(catalog.CLUSTER_MEMBERS) == 2
        rebalances = a.metrics.counter(catalog.CLUSTER_REBALANCES)._value.get()
        assert rebalances >= 2  # the join and the loss


async def test_a_standby_takes_the_key_over_when_its_owner_dies(postgres_url: str) -> None:
    owner = Node(postgres_url, "same-key", "first")
    standby = Node(postgres_url, "same-key", "second")
    await owner.member.join()
    waiting = asyncio.create_task(standby.member.join())
    await asyncio.sleep(1.5)
    assert not waiting.done()  # the key has an owner
    report = standby.readiness.report()
    assert "standby" in str(report)
    connection = owner.member._connection
    assert connection is not None
    await connection.close()  # the owner dies
    await asyncio.wait_for(waiting, timeout=5)
    assert standby.member.owner
    await standby.member.rebalance()
    assert set(standby.universe.codes) == set(SYMBOLS)  # alone: it sweeps everything
    await standby.member.leave()


async def test_the_leader_forgets_a_standby_that_died_waiting(postgres_url: str) -> None:
    owner = Node(postgres_url, "same-key", "first")
    standby = Node(postgres_url, "same-key", "second")
    await owner.member.join()
    waiting = asyncio.create_task(standby.member.join())
    try:
        roles = "SELECT member_id, role FROM cluster_members ORDER BY member_id"
        connection = owner.member._connection
        assert connection is not None
        for _ in range(100):
            found = await (await connection.execute(roles)).fetchall()
            if ("second", "standby") in found:
                break
            await asyncio.sleep(0.02)
        assert ("second", "standby") in found
        waiting.cancel()  # the standby is killed while it waits
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert standby.member._connection is not None
        await standby.member._connection.close()
        for _ in range(100):  # its backend gone, the leader's next look forgets its row
            await owner.member.rebalance()
            found = await (await connection.execute(roles)).fetchall()
            if found == [("first", "owner")]:
                break
            await asyncio.sleep(0.02)
        assert found == [("first", "owner")]
    finally:
        await owner.member.leave()


async def test_the_leader_moves_when_it_leaves(postgres_url: str) -> None:
    a, b = Node(postgres_url, "key-a", "a"), Node(postgres_url, "key-b", "b")
    await a.member.join()
    await b.member.join()
    await settle(a, b)
    leader, other = (a, b) if a.member.leader else (b, a)
    assert not other.member.leader
    await leader.member.leave()
    for _ in range(100):  # the server releases the lock a moment after the socket closes
        await settle(other)
        if other.member.leader:
            break
        await asyncio.sleep(0.05)
    assert other.member.leader
    assert other.gauge(catalog.CLUSTER_MEMBERS) == 1
    await other.member.leave()


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none"])
async def test_an_unreachable_database_is_a_cluster_error(url: str) -> None:
    from observer.cluster import ClusterError

    node = Node(url, "k", "m")
    with pytest.raises(ClusterError, match="cannot join the cluster"):
        await node.member.join()


async def test_a_member_still_starting_leaves_its_share_to_the_others(postgres_url: str) -> None:
    """Joined (its token or universe still loading) is not sweeping: the others keep its
    symbols until it starts, then give exactly its share away."""
    a, b = Node(postgres_url, "key-a", "a"), Node(postgres_url, "key-b", "b")
    async with running(a):
        await b.member.join()
        try:
            await settle(a, b)
            assert set(a.universe.codes) == set(SYMBOLS)  # b is live but not sweeping yet
            assert a.gauge(catalog.CLUSTER_MEMBERS) == 2
            await b.member.start_sweeping()
            await settle(a)
            share_a, share_b = set(a.universe.codes), set(b.universe.codes)
            assert share_a and share_b and not share_a & share_b
            assert share_a | share_b == set(SYMBOLS)
        finally:
            await b.member.leave()
