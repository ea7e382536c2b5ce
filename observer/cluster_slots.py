"""Track B's slots pooled across the cluster's keys, through PostgreSQL.

Two tables hold the pool:

- ``cluster_slots``: which key registers which symbol (one row per symbol, so a
  symbol is registered on one key at most), with its trigger's kind and value
  and the process that registered it (``holder``);
- ``cluster_triggers``: triggers raised on any member, waiting for the leader
  (one row per symbol: the highest score wins).

``ClusterMember.run`` calls ``SlotPool.tick`` every ``PLACEMENT_SECONDS``, on
its own coordination connection:

1. the triggers raised here since the last tick go to ``cluster_triggers``;
2. on the leader, in one transaction that keeps the members' writes to both
   tables out until it commits (``LOCK_POOL``): the waiting triggers are taken,
   the pool is read and ``slot_pool.place`` decides against the live keys'
   capacities (``cluster_members.slot_capacity``, which a member publishes once
   its Track B runs: 0 until then). A key that cannot take slots yet — its owner
   still starting, or gone with a standby connected to take it over — keeps
   the slots it has and is given no new ones, for at most
   ``TAKEOVER_GRACE_SECONDS``; then they move like a dead key's. The changes are
   written and each decision is addressed to the member that raised the trigger
   (``cluster_trigger_outcomes``), which counts it (``observer_trackb_triggers_total``,
   ``observer_trackb_evictions_total``) as a lone Observer counts its own;
3. the member reads its own key's rows and makes its Track B hold exactly them:
   it releases what is gone, then holds what is new. A row another process
   registered (moved from a dead key, or its own key's previous owner) is
   resumed from the symbol's last stored trade, so the stretch nobody watched is
   a ``session_drop`` gap, stored and backfilled as after a restart; a row this
   process registered but no longer holds (the broker refused it) is deleted.

The leader never puts more on a key than its capacity and every member's own
``SlotTable`` refuses a 42nd, so no key's session ever asks for more than 41.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import psycopg

from metrics import catalog
from metrics.labels import ClaimOutcome
from metrics.registry import Metrics
from observer.errors import ObserverError
from observer.records import Trade, Trigger, TriggerKind
from observer.slot_pool import Decision, PooledSlot, changes, place
from observer.slots import KIS_MAX_REGISTRATIONS

log = logging.getLogger(__name__)

PLACEMENT_SECONDS = 1.0  # how often triggers are sent, placed and the own rows read
STALE_TRIGGER_SECONDS = 30.0  # a trigger that waited this long for a leader is dropped
# A key that cannot take slots yet (its owner still starting: token, universe; or gone,
# with a standby connected, which polls every second) keeps the slots it has this long;
# then they move to the keys that can, like a dead key's.
TAKEOVER_GRACE_SECONDS = 30.0
TRIGGER_KINDS = frozenset(kind.value for kind in TriggerKind)
OUTCOMES = frozenset(outcome.value for outcome in ClaimOutcome)
SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_slots (
    symbol text PRIMARY KEY, key_fingerprint text NOT NULL, kind text NOT NULL,
    value double precision NOT NULL, valued_at double precision NOT NULL,
    claimed_at double precision NOT NULL, holder text,
    orphaned_at double precision
);
CREATE TABLE IF NOT EXISTS cluster_triggers (
    symbol text PRIMARY KEY, kind text NOT NULL, score double precision NOT NULL,
    raised_at double precision NOT NULL, member_id text NOT NULL,
    sent_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
);
CREATE TABLE IF NOT EXISTS cluster_trigger_outcomes (
    id bigserial PRIMARY KEY, member_id text NOT NULL, kind text NOT NULL,
    outcome text NOT NULL, evicted boolean NOT NULL
);
DO $$ BEGIN  -- a table of an earlier build; ALTERed only then (its lock would wait on the leader)
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'cluster_triggers'::regclass AND attname = 'sent_at' AND NOT attisdropped
    ) THEN
        ALTER TABLE cluster_triggers ADD COLUMN
            sent_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp());
    END IF;
END $$
"""
SEND_TRIGGERS = """
INSERT INTO cluster_triggers (symbol, kind, score, raised_at, member_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[])
ON CONFLICT (symbol) DO UPDATE SET
    kind = CASE WHEN EXCLUDED.score > cluster_triggers.score
                THEN EXCLUDED.kind ELSE cluster_triggers.kind END,
    score = GREATEST(cluster_triggers.score, EXCLUDED.score),
    raised_at = LEAST(cluster_triggers.raised_at, EXCLUDED.raised_at),
    sent_at = EXCLUDED.sent_at
"""
# The leader's transaction first waits for the members' statements on these two tables
# and then keeps them out until it commits: a member's upsert of several triggers and
# the leader's DELETE would otherwise lock rows in different orders (a deadlock, which
# stops one of the two Observers).
LOCK_POOL = "LOCK TABLE cluster_triggers, cluster_slots IN SHARE ROW EXCLUSIVE MODE"
# How long each trigger waited is measured on the database's clock (``sent_at``, the
# latest send of its symbol): the members' clocks need not agree with the leader's.
TAKE_TRIGGERS = """
DELETE FROM cluster_triggers RETURNING symbol, kind, score, raised_at, member_id,
    extract(epoch FROM clock_timestamp()) - sent_at
"""
TELL_OUTCOMES = """
INSERT INTO cluster_trigger_outcomes (member_id, kind, outcome, evicted)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::boolean[])
"""
TAKE_OUTCOMES = """
DELETE FROM cluster_trigger_outcomes WHERE member_id = %s RETURNING kind, outcome, evicted
"""
FORGET_OUTCOMES = """
DELETE FROM cluster_trigger_outcomes o
WHERE NOT EXISTS (SELECT 1 FROM cluster_members m WHERE m.member_id = o.member_id)
"""
SLOT_COLUMNS = "symbol, key_fingerprint, kind, value, valued_at, claimed_at, holder, orphaned_at"
POOL = f"SELECT {SLOT_COLUMNS} FROM cluster_slots FOR UPDATE"
# A member is live while its backend holds an advisory lock (its key's) in this database:
# the server drops the lock with a killed member's connection, with nobody to tell.
HOLDS_A_LOCK = """EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.pid = m.backend_pid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)"""
CAPACITIES = f"""
SELECT m.key_fingerprint, max(m.slot_capacity) FROM cluster_members m
WHERE m.role = 'owner' AND {HOLDS_A_LOCK}
GROUP BY m.key_fingerprint
"""
STANDBYS = """
SELECT DISTINCT m.key_fingerprint FROM cluster_members m
WHERE m.role = 'standby' AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid)
"""
DELETE_SLOTS = "DELETE FROM cluster_slots WHERE symbol = ANY(%s::text[])"
WRITE_SLOTS = f"""
INSERT INTO cluster_slots ({SLOT_COLUMNS})
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[],
                     %s::float8[], %s::text[], %s::float8[])
ON CONFLICT (symbol) DO UPDATE SET key_fingerprint = EXCLUDED.key_fingerprint,
    kind = EXCLUDED.kind, value = EXCLUDED.value, valued_at = EXCLUDED.valued_at,
    claimed_at = EXCLUDED.claimed_at, holder = EXCLUDED.holder,
    orphaned_at = EXCLUDED.orphaned_at
"""
OWN_SLOTS = f"SELECT {SLOT_COLUMNS} FROM cluster_slots WHERE key_fingerprint = %s"
MARK_HELD = """
UPDATE cluster_slots SET holder = %s, orphaned_at = NULL
WHERE key_fingerprint = %s AND symbol = ANY(%s::text[])
"""
FORGET_OWN = """
DELETE FROM cluster_slots WHERE key_fingerprint = %s AND holder = %s AND symbol = ANY(%s::text[])
"""


class SlotHolder(Protocol):
    """The member's Track B as the pool drives it (``observer.track_b.TrackB``)."""

    def held(self) -> frozenset[str]: ...

    def hold(
        self,
        symbol: str,
        *,
        kind: str,
        value: float,
        resume_from: Trade | None = None,
        alive_at: float | None = None,
    ) -> bool: ...

    def release(self, symbol: str) -> None: ...

    def note_refusal(self) -> None: ...


LastTrades = Callable[[Iterable[str]], Awaitable[Mapping[str, Trade]]]
"""``async (symbols) -> {symbol: its latest stored trade}`` (``Storage.last_trades``)."""


class SlotPool:
    """This member's part in the pooled slots: its triggers out, its key's rows in."""

    def __init__(
        self,
        *,
        key_fingerprint: str,
        member_id: str,
        min_hold_seconds: float,
        metrics: Metrics,
        track: SlotHolder | None = None,
        last_trades: LastTrades | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_fingerprint = key_fingerprint
        self.member_id = member_id
        self.holder = uuid.uuid4().hex  # this process: a restart is another holder
        self._min_hold = min_hold_seconds
        self._metrics = metrics
        self._track = track
        self._last_trades = last_trades
        self._clock = clock
        self._outbox: dict[str, Trigger] = {}
        # key -> when this leader first saw it unable to take slots (ownerless or starting)
        self._awaited: dict[str, float] = {}
        # Set by ClusterMember.join when this process waited as a standby for its key:
        # its last poll that found the key still held (the owner alive then).
        self.taken_over_at: float | None = None

    @property
    def attached(self) -> bool:
        """This member's Track B is built: it can hold slots (``ClusterMember`` then
        publishes its capacity)."""
        return self._track is not None

    def attach(self, track: SlotHolder) -> None:
        """This member's Track B, once built: from now on it holds this key's rows."""
        self._track = track

    def offer(self, trigger: Trigger) -> None:
        """Track A's trigger (the trigger hub's subscriber): sent to the leader next tick."""
        waiting = self._outbox.get(trigger.symbol)
        if waiting is None or trigger.score > waiting.score:
            self._outbox[trigger.symbol] = trigger

    async def tick(self, connection: psycopg.AsyncConnection[Any], *, leader: bool) -> None:
        """Send the triggers, place them when leader, hold this key's rows (module docstring)."""
        await self._send(connection)
        if leader:
            await self.place(connection)
        await self._count(connection)
        if self._track is not None:
            await self._reconcile(connection, self._track)

    async def _send(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if not self._outbox:
            return
        triggers = sorted(self._outbox.values(), key=lambda t: t.symbol)
        await connection.execute(
            SEND_TRIGGERS,
            (
                [t.symbol for t in triggers],
                [t.kind.value for t in triggers],
                [t.score for t in triggers],
                [t.at for t in triggers],
                [self.member_id] * len(triggers),
            ),
        )
        self._outbox.clear()  # sent: a failure above keeps them for the next tick

    async def place(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """The leader's decision over the whole pool, in one transaction."""
        now = self._clock()
        async with connection.transaction():
            await connection.execute(LOCK_POOL)
            cursor = await connection.execute(CAPACITIES)
            live = {str(key): int(capacity) for key, capacity in await cursor.fetchall()}
            capacities = {key: capacity for key, capacity in live.items() if capacity > 0}
            cursor = await connection.execute(STANDBYS)
            starting = {key for key, capacity in live.items() if capacity <= 0}
            standbys = {str(key) for (key,) in await cursor.fetchall()}
            reserved = self._not_ready(starting | (standbys - capacities.keys()), now)
            cursor = await connection.execute(TAKE_TRIGGERS)
            taken = await cursor.fetchall()
            cursor = await connection.execute(POOL)
            before = {row[0]: _slot(row) for row in await cursor.fetchall()}
            fresh: list[Trigger] = []
            stale: list[Trigger] = []  # waited too long for a leader: news no more, refused
            for symbol, kind, score, at, _, waited in taken:
                if kind in TRIGGER_KINDS:
                    trigger = Trigger(
                        symbol=str(symbol), kind=TriggerKind(kind), score=float(score), at=float(at)
                    )
                    late = float(waited) >= STALE_TRIGGER_SECONDS
                    (stale if late else fresh).append(trigger)
            raised_by = {str(row[0]): str(row[4]) for row in taken}
            placement = place(
                before.values(),
                capacities,
                fresh,
                min_hold_seconds=self._min_hold,
                now=now,
                reserved=reserved,
                ownerless_since=self._awaited,  # a grace that ran out: the gap starts before it
            )
            placement.decisions.extend(Decision(t, ClaimOutcome.REFUSED) for t in stale)
            gone, written = changes(before, placement.slots)
            if gone:
                await connection.execute(DELETE_SLOTS, (gone,))
            if written:
                await connection.execute(WRITE_SLOTS, _columns(written))
            if placement.decisions:  # each member counts the outcomes of its own triggers
                decisions = placement.decisions
                await connection.execute(
                    TELL_OUTCOMES,
                    (
                        [raised_by.get(d.trigger.symbol, self.member_id) for d in decisions],
                        [d.trigger.kind.value for d in decisions],
                        [d.outcome.value for d in decisions],
                        [d.evicted is not None for d in decisions],
                    ),
                )
            await connection.execute(FORGET_OUTCOMES)  # of members gone
        if placement.moved or placement.dropped:
            log.info(
                "slots moved from keys gone moved=%d dropped=%d",
                len(placement.moved),
                len(placement.dropped),
            )

    def _not_ready(self, keys: set[str], now: float) -> dict[str, int]:
        """Of the keys that cannot take slots yet, those inside their grace: each keeps
        what it has (``slot_pool.place``'s ``reserved``)."""
        self._awaited = {key: self._awaited.get(key, now) for key in keys}
        return {
            key: KIS_MAX_REGISTRATIONS
            for key in keys
            if now - self._awaited[key] < TAKEOVER_GRACE_SECONDS
        }

    async def _count(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Count what the leader decided for the triggers raised here (as a lone Observer
        counts its own: the refused share and the churn stay per member)."""
        cursor = await connection.execute(TAKE_OUTCOMES, (self.member_id,))
        triggers = self._metrics.counter(catalog.TRACK_B_TRIGGERS)
        for kind, outcome, evicted in await cursor.fetchall():
            if kind not in TRIGGER_KINDS or outcome not in OUTCOMES:
                continue
            triggers.labels(kind, outcome).inc()
            if evicted:
                self._metrics.counter(catalog.TRACK_B_EVICTIONS).inc()
            if outcome == ClaimOutcome.REFUSED and self._track is not None:
                self._track.note_refusal()

    async def _reconcile(self, connection: psycopg.AsyncConnection[Any], track: SlotHolder) -> None:
        """Make this member's Track B hold exactly its key's rows."""
        cursor = await connection.execute(OWN_SLOTS, (self.key_fingerprint,))
        wanted = {row[0]: _slot(row) for row in await cursor.fetchall()}
        held = track.held()
        for symbol in sorted(held - wanted.keys()):
            track.release(symbol)  # evicted or moved by the leader: released first
        mine = self.holder
        dropped = sorted(s for s, slot in wanted.items() if s not in held and slot.holder == mine)
        if dropped:  # held here before and let go (the broker refused it): not ours any more
            await connection.execute(FORGET_OWN, (self.key_fingerprint, mine, dropped))
        new = [slot for s, slot in sorted(wanted.items()) if s not in held and slot.holder != mine]
        # Held here already but not marked (placed again before we saw it go): mark it.
        taken = sorted(s for s, slot in wanted.items() if s in held and slot.holder != mine)
        resume = await self._resume_points([s.symbol for s in new if s.holder is not None])
        for slot in new:
            if track.hold(
                slot.symbol,
                kind=slot.kind,
                value=slot.value,
                resume_from=resume.get(slot.symbol),
                alive_at=self._last_seen_alive(slot),
            ):
                taken.append(slot.symbol)
            else:
                log.error("no free slot for a placed symbol=%s; left to the leader", slot.symbol)
        if taken:
            await connection.execute(MARK_HELD, (self.holder, self.key_fingerprint, taken))

    def _last_seen_alive(self, slot: PooledSlot) -> float | None:
        """When the process that held ``slot`` before was last known alive (None: unknown).

        Moved from a dead key: the leader's tick before the one that found the key gone.
        Our own key's previous owner: our last standby poll before we took the key.
        """
        if slot.holder is None:
            return None
        if slot.orphaned_at is not None:
            return slot.orphaned_at - PLACEMENT_SECONDS
        return self.taken_over_at

    async def _resume_points(self, symbols: list[str]) -> Mapping[str, Trade]:
        """The last stored trades of symbols another process registered before us."""
        if not symbols or self._last_trades is None:
            return {}
        try:
            return await self._last_trades(symbols)
        except ObserverError as exc:
            log.error("last stored trades unreadable, taken over without resume: %s", exc)
            return {}


def _slot(row: tuple[Any, ...]) -> PooledSlot:
    symbol, key, kind, value, valued_at, claimed_at, holder, orphaned_at = row
    return PooledSlot(
        str(symbol),
        str(key),
        str(kind),
        float(value),
        float(valued_at),
        float(claimed_at),
        None if holder is None else str(holder),
        None if orphaned_at is None else float(orphaned_at),
    )


def _columns(slots: list[PooledSlot]) -> tuple[list[Any], ...]:
    return (
        [s.symbol for s in slots],
        [s.key for s in slots],
        [s.kind for s in slots],
        [s.value for s in slots],
        [s.valued_at for s in slots],
        [s.claimed_at for s in slots],
        [s.holder for s in slots],
        [s.orphaned_at for s in slots],
    )
