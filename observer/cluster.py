"""Several Observers, one per app key, as one collector: membership through PostgreSQL.

Each instance keeps one connection of its own to the shared database and on it:

- **the key lock**: a session-level advisory lock on its key's fingerprint
  (``Credentials.fingerprint``; the key itself is never stored). The holder
  owns the key; a second instance started with the same key waits as a standby
  (not ready, polling every second) and takes over within a second or so of the
  owner's death, when the server releases the lock with the owner's connection;
- **a row in ``cluster_members``**: member id, key fingerprint, exporter URL,
  start time, the connection's backend pid. The live members are the rows whose
  backend still holds an advisory lock (``pg_locks``): a killed member drops out
  as soon as its connection is gone, with nobody to tell;
- **the leader lock**: one more advisory lock; the leader tidies the rows of
  members that are gone (an owner whose locks went, a standby whose connection
  went) and is shown by ``observer_cluster_leader``.

Backfill is shared work: every rebalance a member whose Track B has no backfill
waiting claims pending Track B gaps that no live member holds (stored
``STALE_GAP_SECONDS`` ago or more, so a live member's fresh gaps stay its own),
with ``FOR UPDATE SKIP LOCKED`` so two members never claim the same gap, and
records the claim in ``cluster_gap_claims``; a claim whose member is gone counts
for nothing, so its gaps are claimed again.

Track B's slots are pooled across the live keys (``observer.cluster_slots``):
every ``PLACEMENT_SECONDS`` ``run`` sends this member's triggers, lets the leader
place the cluster's, and makes this member's Track B hold its key's share.

Every ``cluster.rebalance_seconds`` each member reads the live members and keeps
the symbols it owns by rendezvous hashing over their key fingerprints
(``membership.owned``) among the members that sweep (``cluster_members.sweeping``,
set by ``start_sweeping`` once the member has its token and universe, so a member
still starting leaves its share to the others): a leave hands the leaver's
symbols to the survivors, a join takes about 1/N from everyone, and a standby
taking over a key inherits
exactly that key's symbols (and, through ``cluster_tokens``, its access token:
``observer.kis.token_share``). A member whose coordination connection breaks stops
(``ClusterError``) rather than risk a key with two owners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from metrics import catalog
from metrics.registry import Metrics
from observer.cluster_slots import HOLDS_A_LOCK, PLACEMENT_SECONDS, SlotPool
from observer.cluster_slots import SCHEMA as SLOTS_SCHEMA
from observer.config import ClusterSettings
from observer.errors import ObserverError
from observer.gaps import GapWindow
from observer.membership import Member, owned
from observer.readiness import Readiness
from observer.storage_pg import redact, safe_message
from observer.storage_rows import GAP_COLUMNS, WINDOW_COLUMNS, window_from_row
from observer.universe import Universe

log = logging.getLogger(__name__)
STANDBY_POLL_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5
LEADER_LOCK = "observer:leader"
SCHEMA_LOCK = "observer:cluster-schema"

# The server's side of the coordination session: a member stopped inside a transaction
# (SIGSTOP, a frozen VM) holding the pool's table locks is cut off after this long, and a
# member whose machine or network is gone is found dead by TCP keepalives within ~11 s;
# either way its locks go with the session, as after kill -9.
IDLE_IN_TRANSACTION_MS = 10_000
SESSION_LIMITS = (
    "SET idle_in_transaction_session_timeout = {}; SET tcp_keepalives_idle = 5; "
    "SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)
STALE_GAP_SECONDS = 60.0  # a pending gap this old with no live claimer is up for grabs
CLAIM_BATCH = 20
SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_members (
    member_id text PRIMARY KEY, key_fingerprint text NOT NULL, exporter_url text NOT NULL,
    started_at double precision NOT NULL, seen_at double precision NOT NULL,
    backend_pid integer NOT NULL, role text NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_gap_claims (
    symbol text NOT NULL, track text NOT NULL, cause text NOT NULL,
    start double precision NOT NULL, member_id text NOT NULL,
    claimed_at double precision NOT NULL,
    PRIMARY KEY (symbol, track, cause, start)
);
DO $$ BEGIN  -- a table of an earlier build; ALTERed only then (ALTER TABLE's lock would
             -- hold every member's statements on cluster_members while one joins)
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = 'cluster_members'::regclass
            AND attname = 'slot_capacity' AND NOT attisdropped
    ) THEN
        ALTER TABLE cluster_members ADD COLUMN slot_capacity integer NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = 'cluster_members'::regclass
            AND attname = 'sweeping' AND NOT attisdropped
    ) THEN
        ALTER TABLE cluster_members ADD COLUMN sweeping boolean NOT NULL DEFAULT false;
    END IF;
END $$
"""
REGISTER = """
INSERT INTO cluster_members (
    member_id, key_fingerprint, exporter_url, started_at, seen_at, backend_pid, role, slot_capacity
)
VALUES (%s, %s, %s, %s, %s, pg_backend_pid(), %s, %s)
ON CONFLICT (member_id) DO UPDATE SET role = EXCLUDED.role, seen_at = EXCLUDED.seen_at,
    backend_pid = EXCLUDED.backend_pid, exporter_url = EXCLUDED.exporter_url,
    slot_capacity = EXCLUDED.slot_capacity, sweeping = false
"""
LIVE = f"""
SELECT member_id, key_fingerprint, exporter_url, started_at, sweeping FROM cluster_members m
WHERE m.role = 'owner' AND {HOLDS_A_LOCK}
ORDER BY key_fingerprint, member_id
"""
_LIVE_IDS = f"""
SELECT m.member_id FROM cluster_members m WHERE {HOLDS_A_LOCK}
"""
CLAIM_GAPS = f"""
WITH wanted AS (
    SELECT g.symbol, g.track, g.cause, g.start FROM gaps g
    WHERE g.track = 'b' AND g.recovery = 'pending' AND g."end" < %s
      AND NOT EXISTS (
          SELECT 1 FROM cluster_gap_claims c
          WHERE (c.symbol, c.track, c.cause, c.start) = (g.symbol, g.track, g.cause, g.start)
            AND c.member_id IN ({_LIVE_IDS})
      )
    ORDER BY g.start LIMIT %s
    FOR UPDATE OF g SKIP LOCKED
)
INSERT INTO cluster_gap_claims (symbol, track, cause, start, member_id, claimed_at)
SELECT symbol, track, cause, start, %s, %s FROM wanted
ON CONFLICT (symbol, track, cause, start) DO UPDATE
    SET member_id = EXCLUDED.member_id, claimed_at = EXCLUDED.claimed_at
    -- Checked again on the claim row itself: a member that claimed the gap and committed
    -- after this statement's snapshot was taken (so NOT EXISTS above missed it) keeps it.
    WHERE cluster_gap_claims.member_id NOT IN ({_LIVE_IDS})
RETURNING symbol, track, cause, start
"""
CLAIMED_WINDOWS = f"""
SELECT {GAP_COLUMNS}, {WINDOW_COLUMNS} FROM gaps
WHERE (symbol, track, cause, start) IN (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])
)
ORDER BY start, symbol
"""
FORGET_GONE = f"""
DELETE FROM cluster_members m WHERE (m.role = 'owner' AND NOT {HOLDS_A_LOCK})
    OR (m.role = 'standby' AND NOT EXISTS (
    SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid
))
"""


class ClusterError(ObserverError):
    """The coordination database cannot be reached or was lost."""


def instance_id() -> str:
    """This process's member id: host, pid and a random suffix (unique across restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ClusterMember:
    """``join`` before collecting (owner of the key, or standby until it is);
    ``run`` keeps the split up to date; ``leave`` at the end."""

    def __init__(
        self,
        settings: ClusterSettings,
        url: str,
        *,
        password: str | None,
        key_fingerprint: str,
        universe: Universe,
        metrics: Metrics,
        readiness: Readiness,
        exporter_url: str = "",
        member_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._url = url
        self._password = password
        self.key_fingerprint = key_fingerprint
        self.member_id = member_id or settings.member_id or instance_id()
        self._universe = universe
        self._metrics = metrics
        self._readiness = readiness
        self._exporter_url = exporter_url
        self._clock = clock
        self._started_at = clock()
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self.members: tuple[Member, ...] = ()
        self.leader = False
        self.owner = False
        self._backfill_idle: Callable[[], bool] | None = None
        self._adopt: Callable[[list[GapWindow]], None] | None = None
        self._slots: SlotPool | None = None
        self._slot_capacity = 0
        self._slots_published = False  # the capacity, once this member's Track B runs

    def pool_slots(self, pool: SlotPool, capacity: int) -> None:
        """Take part in the pooled Track B slots with ``capacity`` of this key's (0: none).

        Call before ``join``. The member's row shows 0 until the pool's Track B is
        attached (``SlotPool.attach``): the first tick after that publishes ``capacity``,
        so the leader places nothing on a key whose member cannot register it yet."""
        self._slots, self._slot_capacity = pool, capacity

    def share_backfill(
        self, idle: Callable[[], bool], adopt: Callable[[list[GapWindow]], None]
    ) -> None:
        """Take part in the shared backfill: when ``idle()``, claimed gaps go to ``adopt``."""
        self._backfill_idle, self._adopt = idle, adopt

    @property
    def slots(self) -> SlotPool | None:
        """The pooled Track B slots this member takes part in (``pool_slots``)."""
        return self._slots

    @property
    def connection(self) -> psycopg.AsyncConnection[Any] | None:
        """The coordination connection while joined (the shared token rides on it)."""
        return self._connection

    # --- joining and leaving ---------------------------------------------------
    async def join(self) -> None:
        """Connect, register, and wait until this instance owns its key (standby until then)."""
        try:
            options: dict[str, Any] = {
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            }
            if self._password is not None:
                options["password"] = self._password
            options |= {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2}
            options["keepalives_count"] = 3
            self._connection = await psycopg.AsyncConnection.connect(self._url, **options)
            await self._connection.execute(SESSION_LIMITS.format(IDLE_IN_TRANSACTION_MS))
            # Members starting together race on CREATE TABLE IF NOT EXISTS (a unique
            # violation in pg_type): one at a time, under a transaction-level lock.
            async with self._connection.transaction():
                await self._connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,)
                )
                await self._connection.execute(SCHEMA)
                await self._connection.execute(SLOTS_SCHEMA)
            await self._register("standby")
            waiting_logged = False
            owner_seen_at: float | None = None
            while not await self._try_lock(f"observer:key:{self.key_fingerprint}"):
                owner_seen_at = self._clock()
                if not waiting_logged:
                    log.info(
                        "cluster standby key=%s: another member owns it, waiting",
                        self.key_fingerprint,
                    )
                    waiting_logged = True
                self._readiness.set("cluster", False, "standby: the key has another owner")
                await asyncio.sleep(STANDBY_POLL_SECONDS)
                await self._register("standby")
            self.owner = True
            if self._slots is not None:  # what the owner held is resumed from its last poll
                self._slots.taken_over_at = owner_seen_at
            await self._register("owner")
        except psycopg.Error as exc:
            raise self._error("cannot join the cluster", exc) from exc
        self._readiness.set("cluster", True, f"owner of key {self.key_fingerprint}")
        log.info(
            "cluster joined member=%s key=%s store=%s",
            self.member_id,
            self.key_fingerprint,
            redact(self._url),
        )
        await self.rebalance()

    async def leave(self) -> None:
        """Drop this member's row and the connection (which releases its locks)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute(
                "DELETE FROM cluster_members WHERE member_id = %s", (self.member_id,)
            )
        except psycopg.Error as exc:
            log.warning("cluster leave: row not removed reason=%s", self._safe(exc))
        finally:
            await connection.close()
        self._metrics.gauge(catalog.CLUSTER_LEADER).set(0)

    # --- the periodic work -------------------------------------------------------
    async def run(self) -> None:
        """Every ``rebalance_seconds``: heartbeat, leadership, live members, the split;
        with pooled slots, every ``PLACEMENT_SECONDS`` as well: ``SlotPool.tick``."""
        every = self._settings.rebalance_seconds
        if self._slots is not None:
            every = min(every, PLACEMENT_SECONDS)
        next_rebalance = time.monotonic() + self._settings.rebalance_seconds
        while True:
            await self._tick_slots()
            await asyncio.sleep(every)
            if time.monotonic() >= next_rebalance:
                next_rebalance = time.monotonic() + self._settings.rebalance_seconds
                await self.rebalance()

    async def _tick_slots(self) -> None:
        connection = self._connection
        if self._slots is None:
            return
        if connection is None:
            raise ClusterError("cluster: not joined")
        try:
            if not self._slots_published and self._slots.attached:
                await connection.execute(
                    "UPDATE cluster_members SET slot_capacity = %s WHERE member_id = %s",
                    (self._slot_capacity, self.member_id),
                )
                self._slots_published = True
            # Every tick, not only every rebalance: when the leader dies, the next one
            # places triggers and moves the dead key's slots within a second.
            await self._claim_leadership()
            await self._slots.tick(connection, leader=self.leader)
        except psycopg.Error as exc:
            raise self._error("cluster coordination lost", exc) from exc

    async def start_sweeping(self) -> None:
        """Track A is about to sweep here: from now on the others leave this member its
        share (they drop it at their next rebalance); take it now."""
        connection = self._connection
        if connection is None:
            raise ClusterError("cluster: not joined")
        try:
            await connection.execute(
                "UPDATE cluster_members SET sweeping = true WHERE member_id = %s",
                (self.member_id,),
            )
        except psycopg.Error as exc:
            raise self._error("cluster coordination lost", exc) from exc
        await self.rebalance()

    async def rebalance(self) -> None:
        connection = self._connection
        if connection is None:
            raise ClusterError("cluster: not joined")
        try:
            await connection.execute(
                "UPDATE cluster_members SET seen_at = %s WHERE member_id = %s",
                (self._clock(), self.member_id),
            )
            await self._claim_leadership()
            if self.leader:
                await connection.execute(FORGET_GONE)
            cursor = await connection.execute(LIVE)
            rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise self._error("cluster coordination lost", exc) from exc
        members = tuple(
            Member(str(r[0]), str(r[1]), str(r[2]), float(r[3]), bool(r[4])) for r in rows
        )
        changed = {m.key_fingerprint for m in members} != {m.key_fingerprint for m in self.members}
        self.members = members
        # Only members that sweep share the universe: one still starting (its token, its
        # universe) leaves its share to the others until start_sweeping.
        keys = [m.key_fingerprint for m in members if m.sweeping]
        me = self.key_fingerprint
        change = self._universe.assign(lambda symbols: owned(symbols, keys, me))
        if changed or change.added or change.removed:
            self._metrics.counter(catalog.CLUSTER_REBALANCES).inc()
            log.info(
                "cluster rebalanced members=%d owned=%d gained=%d gave=%d",
                len(members),
                len(self._universe.codes),
                len(change.added),
                len(change.removed),
            )
        await self._claim_gaps()
        self._metrics.gauge(catalog.CLUSTER_MEMBERS).set(len(members))
        self._metrics.gauge(catalog.CLUSTER_SYMBOLS_OWNED).set(len(self._universe.codes))
        self._metrics.gauge(catalog.CLUSTER_LEADER).set(1 if self.leader else 0)

    async def claim_gaps(self) -> list[GapWindow]:
        """Claim pending Track B gaps no live member holds; their windows, oldest first."""
        connection = self._connection
        if connection is None:
            raise ClusterError("cluster: not joined")
        now = self._clock()
        try:
            async with connection.transaction():
                cursor = await connection.execute(
                    CLAIM_GAPS, (now - STALE_GAP_SECONDS, CLAIM_BATCH, self.member_id, now)
                )
                keys = await cursor.fetchall()
                if not keys:
                    return []
                columns = [list(column) for column in zip(*keys, strict=True)]
                cursor = await connection.execute(CLAIMED_WINDOWS, columns)
                rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise self._error("cluster coordination lost", exc) from exc
        return [window_from_row(row) for row in rows]

    async def _claim_gaps(self) -> None:
        if self._adopt is None or self._backfill_idle is None or not self._backfill_idle():
            return
        windows = await self.claim_gaps()
        if windows:
            log.info("cluster claimed pending gaps count=%d", len(windows))
            self._adopt(windows)

    # --- helpers -------------------------------------------------------------------
    async def _register(self, role: str) -> None:
        assert self._connection is not None
        now = self._clock()
        await self._connection.execute(
            REGISTER,
            (
                self.member_id,
                self.key_fingerprint,
                self._exporter_url,
                self._started_at,
                now,
                role,
                self._slot_capacity if self._slots_published else 0,
            ),
        )

    async def _claim_leadership(self) -> None:
        """Take the leader lock if it is free (kept, once held, until the connection ends)."""
        if not self.leader:
            self.leader = await self._try_lock(LEADER_LOCK)
            if self.leader:
                log.info("cluster leader member=%s", self.member_id)
                self._metrics.gauge(catalog.CLUSTER_LEADER).set(1)

    async def _try_lock(self, name: str) -> bool:
        assert self._connection is not None
        cursor = await self._connection.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (name,)
        )
        row = await cursor.fetchone()
        return bool(row and row[0])

    def _safe(self, error: BaseException) -> str:
        return safe_message(error, self._password)

    def _error(self, what: str, error: BaseException) -> ClusterError:
        return ClusterError(f"{what} ({redact(self._url)}): {self._safe(error)}")
