"""Track B's slots pooled across keys through a real PostgreSQL: placement, take-over, release.

The members are real ``ClusterMember``s with real ``SlotPool``s on one database;
what each one's Track B holds is a ``Holding`` (the ``SlotHolder`` side only:
the WebSocket session is tested in tests/track_b and end to end in
test_cluster_run.py and test_cluster_kill.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import psycopg
import pytest

from metrics import catalog
from metrics.registry import Metrics, new_registry
from observer import cluster
from observer.cluster import ClusterMember
from observer.cluster_slots import (
    PLACEMENT_SECONDS,
    STALE_TRIGGER_SECONDS,
    TAKEOVER_GRACE_SECONDS,
    SlotPool,
)
from observer.config import ClusterSettings
from observer.readiness import Readiness
from observer.records import Trade, Trigger, TriggerKind
from observer.storage import StorageReader
from observer.universe import Universe

SETTINGS = ClusterSettings(enabled=True, rebalance_seconds=0.2)
STORED = {f"{n:06d}": Trade(f"{n:06d}", "20261204", "100000", 7000, 10, 500) for n in range(20)}


class Holding:
    """What a member's Track B holds, with the resume point each symbol was held with."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.resumed: dict[str, Trade | None] = {}
        self.alive_at: dict[str, float | None] = {}
        self.refusals = 0

    def held(self) -> frozenset[str]:
        return frozenset(self.resumed)

    def hold(
        self,
        symbol: str,
        *,
        kind: str,
        value: float,
        resume_from: Trade | None = None,
        alive_at: float | None = None,
    ) -> bool:
        if len(self.resumed) >= self.capacity:
            return False
        self.resumed[symbol] = resume_from
        self.alive_at[symbol] = alive_at
        return True

    def release(self, symbol: str) -> None:
        self.resumed.pop(symbol, None)

    def note_refusal(self) -> None:
        self.refusals += 1


async def last_trades(symbols: Iterable[str]) -> Mapping[str, Trade]:
    return {symbol: STORED[symbol] for symbol in symbols if symbol in STORED}


class Node:
    def __init__(
        self,
        url: str,
        key: str,
        name: str,
        capacity: int,
        clock: Callable[[], float] = time.time,
        *,
        attached: bool = True,
    ) -> None:
        """``attached``: its Track B is built (False: the member is still starting)."""
        self.metrics = Metrics(new_registry(), version="t")
        self.universe = Universe(self.metrics)
        self.universe.replace(sorted(STORED))
        self.holding = Holding(capacity)
        self.pool = SlotPool(
            key_fingerprint=key,
            member_id=name,
            min_hold_seconds=0.0,
            metrics=self.metrics,
            track=self.holding if attached else None,
            last_trades=last_trades,
            clock=clock,
        )
        self.member = ClusterMember(
            SETTINGS,
            url,
            password=None,
            key_fingerprint=key,
            universe=self.universe,
            metrics=self.metrics,
            readiness=Readiness(),
            member_id=name,
        )
        self.member.pool_slots(self.pool, capacity)

    async def tick(self) -> None:
        await self.member.rebalance()
        await self.member._tick_slots()

    def offer(self, symbol: str, score: float, at: float) -> None:
        """A trigger raised ``at`` seconds from now (the leader takes them in that order)."""
        trigger = Trigger(
            symbol=symbol, kind=TriggerKind.PRICE_MOVE, score=score, at=time.time() + at
        )
        self.pool.offer(trigger)

    def counted(self, outcome: str) -> float:
        counter = self.metrics.counter(catalog.TRACK_B_TRIGGERS)
        return float(counter.labels("price_move", outcome)._value.get())

    async def die(self) -> None:
        """Killed: the connection goes without a goodbye (its row and slots stay behind)."""
        connection = self.member._connection
        assert connection is not None
        await connection.close()


async def settle(*nodes: Node, until: object = None, rounds: int = 100) -> None:
    """Tick every node (leader first) until ``until()`` holds; a few rounds when None."""
    for _ in range(rounds):
        for node in sorted(nodes, key=lambda n: not n.member.leader):
            await node.tick()
        for node in nodes:
            await node.tick()
        if until is None and _ >= 2:
            return
        if until is not None and until():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the pool did not settle")


def rows(url: str) -> dict[str, tuple[str, str | None]]:
    with StorageReader(url) as reader:
        found = reader.rows("SELECT symbol, key_fingerprint, holder FROM cluster_slots")
        return {str(symbol): (str(key), holder) for symbol, key, holder in found}


async def test_a_trigger_on_a_full_member_is_placed_on_a_key_with_room(postgres_url: str) -> None:
    a, b = Node(postgres_url, "key-a", "a", 2), Node(postgres_url, "key-b", "b", 2)
    await a.member.join()
    await b.member.join()
    try:
        await settle(a, b)  # both running: their capacities published
        for n in range(3):  # all three raised on a: more than its own key holds
            a.offer(f"{n:06d}", 2.0 + n, at=float(n))
        await settle(a, b)
        assert len(a.holding.held()) + len(b.holding.held()) == 3
        assert a.holding.held().isdisjoint(b.holding.held())
        assert len(a.holding.held()) <= 2 and len(b.holding.held()) <= 2
        placed = rows(postgres_url)
        assert sorted(placed) == ["000000", "000001", "000002"]
        assert {key for key, _ in placed.values()} == {"key-a", "key-b"}
        for symbol, (key, holder) in placed.items():
            node = a if key == "key-a" else b
            assert symbol in node.holding.held() and holder == node.pool.holder
            assert node.holding.resumed[symbol] is None  # a new placement: no resume
        # Decided once, by the leader; counted by the member that raised them.
        assert (a.counted("claimed"), b.counted("claimed")) == (3, 0)
        # A fifth trigger with the pool full and nobody worth less: refused, counted.
        a.offer("000003", 2.5, at=10.0)
        b.offer("000004", 9.0, at=11.0)
        await settle(a, b)
        held = a.holding.held() | b.holding.held()
        assert "000004" in held and len(held) == 4
        a.offer("000005", 0.1, at=12.0)
        await settle(a, b)
        assert (a.counted("refused"), b.counted("refused")) == (1, 0)
        assert (a.holding.refusals, b.holding.refusals) == (1, 0)  # towards a's starvation
        # A trigger that waited past STALE_TRIGGER_SECONDS for a leader is refused.
        assert a.member.leader
        b.offer("000006", 99.0, at=0.0)
        await b.member._tick_slots()  # sent, not placed yet (b is not the leader)
        with psycopg.connect(postgres_url, autocommit=True) as aging:
            aging.execute(
                "UPDATE cluster_triggers SET sent_at = sent_at - %s", (STALE_TRIGGER_SECONDS + 1,)
            )
        await settle(a, b)
        assert "000006" not in a.holding.held() | b.holding.held()
        assert b.counted("refused") == 1
        # A member whose clock is behind the leader's: its fresh triggers are placed
        # (how long a trigger waited is measured on the database's clock).
        b.offer("000007", 99.0, at=-STALE_TRIGGER_SECONDS - 30)
        await settle(a, b)
        assert "000007" in a.holding.held() | b.holding.held()
        assert b.counted("refused") == 1
    finally:
        await a.member.leave()
        await b.member.leave()


async def test_a_dead_members_slots_move_to_survivors_and_resume_from_the_store(
    postgres_url: str,
) -> None:
    a, b = Node(postgres_url, "key-a", "a", 3), Node(postgres_url, "key-b", "b", 3)
    c = Node(postgres_url, "key-c", "c", 1)
    for node in (a, b, c):
        await node.member.join()
    try:
        await settle(a, b, c)
        for n in range(7):
            a.offer(f"{n:06d}", 1.0 + n, at=float(n))
        await settle(a, b, c)
        lost = set(a.holding.held())
        assert len(lost) == 3
        assert len(b.holding.held()) == 3 and len(c.holding.held()) == 1
        # Free room on the survivors: one slot. a's best symbol moves, the rest is dropped.
        b.holding.release(min(b.holding.held()))  # the broker refused one: the row goes
        await settle(b, c)
        assert len(rows(postgres_url)) == 6
        died = time.time()
        await a.die()

        def moved() -> bool:
            return not set(rows(postgres_url)) & (lost - (b.holding.held() | c.holding.held()))

        await settle(b, c, until=moved)
        placed = rows(postgres_url)
        assert len(placed) == 4 and {key for key, _ in placed.values()} == {"key-b", "key-c"}
        survivors = b.holding.held() | c.holding.held()
        taken = lost & survivors
        best = max(lost)  # the highest score went to the highest symbol number
        assert taken == {best}
        assert b.holding.resumed[best] == STORED[best]  # resumed from its last stored trade
        # The gap is rated from the leader's last look at the dead key: about when it died.
        alive_at = b.holding.alive_at[best]
        assert alive_at is not None and died - 2.0 <= alive_at <= time.time()
        assert all(b.holding.resumed[s] is None for s in b.holding.held() - {best})
        assert len(b.holding.held()) <= 3 and len(c.holding.held()) <= 1
    finally:
        await b.member.leave()
        await c.member.leave()


async def test_a_standby_taking_the_key_over_holds_what_its_owner_held(postgres_url: str) -> None:
    owner, other = Node(postgres_url, "key-a", "first", 2), Node(postgres_url, "key-b", "b", 0)
    await owner.member.join()
    await other.member.join()
    standby = Node(postgres_url, "key-a", "second", 2)
    try:
        owner.offer("000001", 3.0, at=1.0)
        owner.offer("000002", 2.0, at=2.0)
        await settle(owner, other)
        assert owner.holding.held() == {"000001", "000002"}
        waiting = asyncio.create_task(standby.member.join())
        await asyncio.sleep(1.2)  # at least one standby poll finds the owner alive
        died = time.time()
        await owner.die()
        await asyncio.wait_for(waiting, timeout=10)
        await settle(standby, other, until=lambda: len(standby.holding.held()) == 2)
        assert standby.holding.resumed == {s: STORED[s] for s in ("000001", "000002")}
        # Rated from the standby's last poll that found the owner alive.
        for alive_at in standby.holding.alive_at.values():
            assert alive_at is not None and died - 1.5 <= alive_at <= died
        assert {holder for _, holder in rows(postgres_url).values()} == {standby.pool.holder}
    finally:
        await standby.member.leave()
        await other.member.leave()


async def test_a_standby_keeps_its_owners_slots_though_the_leader_looks_first(
    postgres_url: str,
) -> None:
    """The leader sees the owner gone before the standby has taken the key over: the
    key's slots wait for the standby rather than being dropped (no room elsewhere)."""
    frozen = time.time()  # the leader's clock: the grace cannot run out on a slow machine
    leader = Node(postgres_url, "key-l", "leader", 0, clock=lambda: frozen)
    owner = Node(postgres_url, "key-a", "first", 2)
    standby = Node(postgres_url, "key-a", "second", 2, attached=False)
    await leader.member.join()
    await owner.member.join()
    try:
        owner.offer("000001", 3.0, at=1.0)
        owner.offer("000002", 2.0, at=2.0)
        await settle(leader, owner, until=lambda: len(owner.holding.held()) == 2)
        assert leader.member.leader
        waiting = asyncio.create_task(standby.member.join())
        with StorageReader(postgres_url) as reader:
            polled = "SELECT seen_at FROM cluster_members WHERE member_id = 'second'"
            seen: list[float] = []
            for _ in range(100):  # right after one of the standby's polls
                # Off the loop: the standby's join (on this loop) may hold a lock this
                # read waits for, and it must be free to commit meanwhile.
                now = await asyncio.to_thread(
                    lambda: [float(row[0]) for row in reader.rows(polled)]
                )
                if seen and now and now != seen:
                    break
                seen = now or seen
                await asyncio.sleep(0.02)
        await owner.die()
        while not waiting.done():  # the leader places while the key has no owner
            await leader.tick()
            await asyncio.sleep(0.05)
        await waiting
        # The new owner still starting (token, universe: no Track B yet): the rows wait.
        await settle(leader, standby)
        assert {key for key, _ in rows(postgres_url).values()} == {"key-a"}
        standby.pool.attach(standby.holding)
        await settle(leader, standby, until=lambda: len(standby.holding.held()) == 2)
        assert standby.holding.resumed == {s: STORED[s] for s in ("000001", "000002")}
        assert {key for key, _ in rows(postgres_url).values()} == {"key-a"}
    finally:
        await standby.member.leave()
        await leader.member.leave()


async def test_a_standby_that_never_takes_over_leaves_the_slots_to_the_survivors(
    postgres_url: str,
) -> None:
    """A connected standby that does not take the key over (hung): after the grace the
    key's slots move to the live keys like a dead key's."""
    now = [time.time()]
    leader = Node(postgres_url, "key-l", "leader", 2, clock=lambda: now[0])
    owner = Node(postgres_url, "key-a", "first", 2)
    await leader.member.join()
    await owner.member.join()
    hung = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        owner.offer("000001", 3.0, at=1.0)
        await settle(leader, owner, until=lambda: owner.holding.held() == {"000001"})
        await hung.execute(
            "INSERT INTO cluster_members VALUES "
            "('second', 'key-a', '', 0, 0, pg_backend_pid(), 'standby', 2)"
        )
        await owner.die()
        ownerless_at = now[0]
        await settle(leader)
        assert rows(postgres_url)["000001"][0] == "key-a"  # waiting for the standby
        leader.offer("000002", 9.0, at=3.0)  # worth more, but never placed on key-a
        now[0] += TAKEOVER_GRACE_SECONDS - 0.5
        await settle(leader)
        placed = rows(postgres_url)
        assert placed["000001"][0] == "key-a" and placed["000002"][0] == "key-l"
        now[0] += 1.0
        await settle(leader)
        assert {key for key, _ in rows(postgres_url).values()} == {"key-l"}
        assert leader.holding.held() == {"000001", "000002"}
        assert leader.holding.resumed["000001"] == STORED["000001"]
        # Rated from the leader's last look before it found the key ownerless, not from
        # the end of the grace.
        assert leader.holding.alive_at["000001"] == ownerless_at - PLACEMENT_SECONDS
    finally:
        await hung.close()
        await leader.member.leave()


async def test_a_trigger_storm_across_members_never_deadlocks_the_leader(postgres_url: str) -> None:
    """Members send overlapping triggers while the leader takes them and places: the
    leader's locks never cross a member's (a deadlock would stop a member)."""

    leader = Node(postgres_url, "key-l", "leader", 41)
    members = [Node(postgres_url, f"key-{n}", f"m{n}", 41) for n in range(3)]
    for node in (leader, *members):
        await node.member.join()
    rng = random.Random(7)
    stop = asyncio.Event()

    async def storm(node: Node) -> None:
        for _ in range(40):
            for n in rng.sample(range(400), 200):
                node.offer(f"{n:06d}", rng.uniform(1, 9), at=rng.uniform(-5, 0))
            await node.member._tick_slots()

    async def lead() -> None:
        while not stop.is_set():
            await leader.member._tick_slots()

    try:
        placing = asyncio.create_task(lead())
        await asyncio.gather(*(storm(node) for node in members))
        stop.set()
        await placing
        await settle(leader, *members)  # the last triggers sent: placed
        placed = rows(postgres_url)
        per_key = Counter(key for key, _ in placed.values())
        assert len(placed) == 4 * 41 and set(per_key.values()) == {41}
    finally:
        for node in (leader, *members):
            await node.member.leave()


async def test_a_triggers_table_of_an_earlier_build_gains_its_send_time(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as earlier:
        earlier.execute(
            "CREATE TABLE cluster_triggers (symbol text PRIMARY KEY, kind text NOT NULL, "
            "score double precision NOT NULL, raised_at double precision NOT NULL, "
            "member_id text NOT NULL)"
        )
        earlier.execute("INSERT INTO cluster_triggers VALUES ('000001', 'price_move', 2, 0, 'x')")
    node = Node(postgres_url, "key-a", "a", 2)
    await node.member.join()
    try:
        node.offer("000002", 3.0, at=0.0)
        await settle(node, until=lambda: node.holding.held() == {"000001", "000002"})
    finally:
        await node.member.leave()


async def test_a_member_still_starting_is_given_no_trigger_until_its_track_b_runs(
    postgres_url: str,
) -> None:
    """A member that has joined but has no Track B yet (its token, its universe) would
    register nothing: the leader places the triggers on the keys that can."""
    ready = Node(postgres_url, "key-r", "ready", 2)
    starting = Node(postgres_url, "key-n", "starting", 5, attached=False)
    await ready.member.join()
    await starting.member.join()
    try:
        ready.offer("000001", 2.0, at=0.0)
        ready.offer("000002", 3.0, at=1.0)
        await settle(ready, starting)
        assert {key for key, _ in rows(postgres_url).values()} == {"key-r"}
        assert ready.holding.held() == {"000001", "000002"}
        starting.pool.attach(starting.holding)
        await settle(ready, starting)
        ready.offer("000003", 4.0, at=2.0)
        await settle(ready, starting, until=lambda: starting.holding.held() == {"000003"})
    finally:
        await ready.member.leave()
        await starting.member.leave()


async def test_a_leader_without_track_b_places_the_members_triggers(postgres_url: str) -> None:
    leader = Node(postgres_url, "key-l", "leader", 0, attached=False)  # track_b.enabled false
    member = Node(postgres_url, "key-m", "member", 2)
    await leader.member.join()
    await member.member.join()
    try:
        assert leader.member.leader
        member.offer("000001", 2.0, at=0.0)
        await settle(leader, member, until=lambda: member.holding.held() == {"000001"})
        assert member.counted("claimed") == 1
        assert {key for key, _ in rows(postgres_url).values()} == {"key-m"}
    finally:
        await leader.member.leave()
        await member.member.leave()


async def test_when_the_leader_dies_the_next_tick_not_the_next_rebalance_elects_another(
    postgres_url: str,
) -> None:
    """A survivor takes the leader lock at its next slot tick (every second), so the dead
    leader's slots move, rated from about its death, without waiting a rebalance."""
    a, b = Node(postgres_url, "key-a", "a", 2), Node(postgres_url, "key-b", "b", 4)
    await a.member.join()
    await b.member.join()
    try:
        await settle(a, b)
        assert a.member.leader and not b.member.leader  # the first to join leads
        for n in range(4):
            a.offer(f"{n:06d}", 4.0 - n, at=float(n))
        await settle(a, b)
        lost = a.holding.held()
        assert lost and len(lost) <= 4 - len(b.holding.held())  # room for them on b
        died = time.time()
        await a.die()
        for _ in range(100):  # only slot ticks: no rebalance from here on
            await b.member._tick_slots()
            if lost <= b.holding.held():
                break
            await asyncio.sleep(0.05)
        assert b.member.leader
        assert lost <= b.holding.held()
        for symbol in lost:
            alive_at = b.holding.alive_at[symbol]
            assert alive_at is not None and died - PLACEMENT_SECONDS - 1 <= alive_at <= time.time()
    finally:
        await b.member.leave()


async def test_a_leader_frozen_inside_its_transaction_is_cut_off_and_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader stopped while it holds the pool's table locks (SIGSTOP, a frozen VM) would
    hold every member's tick; the server ends its session after the idle-in-transaction
    limit, its locks go with it and another member leads."""
    monkeypatch.setattr(cluster, "IDLE_IN_TRANSACTION_MS", 1000)
    a, b = Node(postgres_url, "key-a", "a", 2), Node(postgres_url, "key-b", "b", 2)
    await a.member.join()
    await b.member.join()
    try:
        await settle(a, b)
        assert a.member.leader
        frozen = a.member._connection
        assert frozen is not None
        await frozen.execute("BEGIN")
        await frozen.execute(
            "LOCK TABLE cluster_triggers, cluster_slots IN SHARE ROW EXCLUSIVE MODE"
        )
        b.offer("000001", 2.0, at=0.0)  # b's send waits for a's locks
        await asyncio.wait_for(b.member._tick_slots(), timeout=15)
        for _ in range(100):
            if b.member.leader and "000001" in a.holding.held() | b.holding.held():
                break
            await b.member._tick_slots()
            await asyncio.sleep(0.05)
        assert b.member.leader
        assert b.holding.held() == {"000001"}  # placed by the new leader on the live key
        with pytest.raises(psycopg.Error):
            await frozen.execute("SELECT 1")  # a's session was ended by the server
    finally:
        await b.member.leave()
