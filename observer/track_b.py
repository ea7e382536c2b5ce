"""Track B: the slot table, the WebSocket session, gap detection and backfill, wired together.

``TrackB.offer(trigger)`` is the hook Track A calls; ``TrackB.run()`` runs the
session, the silent-symbol check and the backfill worker until cancelled.
Every received record is checked by the gap rules and stored; every gap is
counted, stored (recovery ``pending``), then backfilled and stored again with
its recovery. Collaborators are injected: the approval-key provider and the
page fetcher (``KisClient`` methods), the record sink (``Storage``), the
registry, the market-open predicate, the clocks and the WebSocket transport
(``observer.kis.ws.Transport``, default ``websockets.connect``).

After a restart the session that ended with the process is a hole like any
session drop: ``run()`` first reads each symbol's last stored trade
(``last_trades``, ``Storage.last_trades``) and a symbol registered again is
resumed from it (``TrackBGapDetector.resume``), so its first record reveals
the downtime as a ``session_drop`` gap with the exact missing volume, stored
and backfilled like any other. It also reads the gaps a killed process left
``pending`` (``pending_gaps``, ``Storage.pending_gaps``) and hands each to the
backfill worker: one of the current business day is backfilled like a live
gap; one of an earlier day, which trades-by-time no longer answers, ends
``none``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from metrics import catalog
from metrics.labels import ClaimOutcome
from metrics.registry import BatchedHistogram, Metrics
from observer.backfill import DEFAULT_MAX_PAGES, Backfiller, PageFetcher, RecordSink
from observer.config import GapSettings, TrackBSettings
from observer.errors import ObserverError
from observer.gaps import GapWindow, TrackBGapDetector
from observer.kis.frames import ControlReply, FrameError
from observer.kis.ws import (
    ApprovalKeyProvider,
    MarketOpen,
    TrackBSession,
    Transport,
    websockets_transport,
)
from observer.kis.ws_protocol import MAX_REGISTRATIONS_REFUSED
from observer.logs import LogBudget
from observer.market import kst_day
from observer.records import Gap, GapCause, Trade, Trigger
from observer.slots import Claim, SlotTable
from observer.status import SlotView

log = logging.getLogger(__name__)

SILENT_CHECK_MAX_INTERVAL_SECONDS = 1.0
ALARM_WINDOW_SECONDS = 60.0
COUNT_FLUSH_SECONDS = 0.1  # received frames and records reach their counters this often
STORM_RECONNECTS = 5  # reconnects within the window that make a storm
STARVATION_REFUSALS = 10  # refused triggers within the window that make starvation
CLAIM_LOG_LINES = 10  # slot claims logged per window at most (the rest are counted)
CLAIM_LOG_WINDOW_SECONDS = 15.0


class Reporter(Protocol):
    """Error tracking (``observer.tracking.Tracking``) for the moments that matter."""

    def slot_starvation(
        self, refused: int, window_s: float, *, capacity: int | None, allocated: int | None
    ) -> None: ...

    def reconnect_storm(self, count: int, window_s: float, *, last_reason: str | None) -> None: ...


class Burst:
    """Events in a sliding window; ``add`` answers the count once per window at the threshold."""

    def __init__(self, threshold: int, window_seconds: float) -> None:
        self.threshold = threshold
        self.window_seconds = window_seconds
        self._times: deque[float] = deque()
        self._reported_at = -math.inf

    def add(self, now: float) -> int | None:
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window_seconds:
            self._times.popleft()
        if len(self._times) < self.threshold or now - self._reported_at < self.window_seconds:
            return None
        self._reported_at = now
        return len(self._times)


LastTrades = Callable[[], Awaitable[Mapping[str, Trade]]]
"""``async () -> {symbol: its latest stored trade}`` (``Storage.last_trades``)."""

PendingGaps = Callable[[], Awaitable[Sequence[GapWindow]]]
"""``async () -> Track B gaps stored pending, with their windows`` (``Storage.pending_gaps``)."""


class TrackBSink(RecordSink, Protocol):
    """Where Track B's records go (``observer.storage.Storage``): one hand-off per frame."""

    async def put_many(self, records: Sequence[Trade | Gap | GapWindow], /) -> None:
        """Store ``records`` in order, as ``put`` would one by one."""


def _always_open() -> bool:
    return True


class TrackB:
    """Real-time trades for the symbols that matter now, with their holes found and filled."""

    def __init__(
        self,
        track_b: TrackBSettings,
        gaps: GapSettings,
        *,
        ws_url: str,
        approval_key: ApprovalKeyProvider,
        fetch_page: PageFetcher,
        sink: TrackBSink,
        metrics: Metrics,
        market_open: MarketOpen = _always_open,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_backfill_pages: int = DEFAULT_MAX_PAGES,
        on_gap: Callable[[Gap], None] | None = None,
        on_recovered: Callable[[Gap], None] | None = None,
        reporter: Reporter | None = None,
        last_trades: LastTrades | None = None,
        pending_gaps: PendingGaps | None = None,
        previous_alive_at: float | None = None,
        transport: Transport = websockets_transport,
    ) -> None:
        self._settings = track_b
        self._last_trades = last_trades
        self._pending_gaps = pending_gaps
        self._resume_points: dict[str, Trade] = {}  # loaded at start, each used once
        self._sink = sink
        self._metrics = metrics
        self._market_open = market_open
        self._clock = clock
        self._on_gap = on_gap
        self._on_recovered = on_recovered
        self._trigger_of: dict[str, str] = {}  # held symbol -> kind of its latest trigger
        self._reporter = reporter
        self._refusals = Burst(STARVATION_REFUSALS, ALARM_WINDOW_SECONDS)
        self._reconnects = Burst(STORM_RECONNECTS, ALARM_WINDOW_SECONDS)
        self._claim_log = LogBudget(CLAIM_LOG_LINES, CLAIM_LOG_WINDOW_SECONDS)
        self.table = SlotTable(track_b.capacity, min_hold_seconds=track_b.min_hold_seconds)
        self.detector = TrackBGapDetector(
            gaps,
            silent_after_seconds=track_b.silent_symbol_seconds,
            previous_alive_at=previous_alive_at,  # a restart's downtime rates carried gaps
        )
        self.session = TrackBSession(
            ws_url,
            approval_key=approval_key,
            settings=track_b,
            listener=self,
            market_open=market_open,
            rng=rng,
            monotonic=monotonic,
            transport=transport,
        )
        self.backfiller = Backfiller(
            fetch_page, sink, metrics=metrics, max_pages=max_backfill_pages
        )
        # (window, carried): carried = stored pending by an earlier process
        self._pending: asyncio.Queue[tuple[GapWindow, bool]] = asyncio.Queue()
        self._gaps_in_flight = 0  # detected, not yet through backfill
        metrics.gauge(catalog.TRACK_B_SLOTS_CAPACITY).set(
            track_b.capacity if track_b.enabled else 0
        )
        metrics.gauge(catalog.TRACK_B_SLOTS_ALLOCATED).set(0)
        metrics.gauge(catalog.TRACK_B_SESSION_CONNECTED).set(0)
        metrics.on_collect(self._update_slot_idle)
        # Looked up once: on_trades runs for every frame.
        self._frames_received = metrics.counter(catalog.TRACK_B_FRAMES_RECEIVED)
        self._items_received = metrics.counter(catalog.TRACK_B_ITEMS_RECEIVED)
        self._detection_seconds = metrics.histogram(catalog.GAP_DETECTION_DURATION)
        # Frames, records and each frame's gap-rule time are counted here and added
        # to their metrics at most COUNT_FLUSH_SECONDS apart, before every exposition,
        # at each silent check and on a disconnect: three metric updates (each taking
        # a lock) per frame cost more than parsing a record.
        self._frame_detection = BatchedHistogram(self._detection_seconds)
        self._frames_unflushed = 0
        self._items_unflushed = 0
        self._counted_at = -math.inf
        metrics.on_collect(self._flush_counts)

    # --- slots ---------------------------------------------------------------
    def offer(self, trigger: Trigger) -> ClaimOutcome:
        """Track A's trigger: claim a slot for its symbol (maybe evicting one) or refuse it."""
        now = self._clock()
        claim = self.table.claim(trigger.symbol, trigger.score, now)
        self._metrics.counter(catalog.TRACK_B_TRIGGERS).labels(
            trigger.kind.value, claim.outcome.value
        ).inc()
        if claim.outcome is ClaimOutcome.REFUSED:
            self._refused(now)
        else:
            self._trigger_of[trigger.symbol] = trigger.kind.value
        if claim.evicted is not None:
            self._metrics.counter(catalog.TRACK_B_EVICTIONS).inc()
            self._unwatch(claim.evicted, now)
        if claim.outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.EVICTED_OTHER):
            self._log_claim(trigger, claim)
            self._watch(trigger.symbol, now)
            self._resume(trigger.symbol, now)
        self._metrics.gauge(catalog.TRACK_B_SLOTS_ALLOCATED).set(self.table.allocated)
        return claim.outcome

    # --- the cluster's pooled slots (observer.cluster_slots drives these) ------
    def held(self) -> frozenset[str]:
        """The symbols holding a slot."""
        return frozenset(self.table.symbols())

    def hold(
        self,
        symbol: str,
        *,
        kind: str,
        value: float,
        resume_from: Trade | None = None,
        alive_at: float | None = None,
    ) -> bool:
        """Register ``symbol`` where the cluster's leader placed it: a free slot, no eviction.

        ``resume_from`` is its last stored trade when another process registered it
        before (a hand-over): the stretch since is a ``session_drop`` gap, as after a
        restart, rated from ``alive_at`` (when that process was last known alive).
        False when no slot is free (the leader's view was out of date).
        """
        now = self._clock()
        if symbol in self.table:
            return True
        if self.table.allocated >= self.table.capacity:
            return False
        claim = self.table.claim(symbol, value, now)
        self._trigger_of[symbol] = kind
        if claim.slot is not None:
            log.info("slot held symbol=%s slot=%d placed by the cluster", symbol, claim.slot.index)
        self._watch(symbol, now)
        resumed = resume_from is not None and self.detector.resume(
            symbol, resume_from, now, alive_at=alive_at
        )
        if resume_from is not None and resumed:
            log.info(
                "taken over symbol=%s business_date=%s cumulative=%d",
                symbol,
                resume_from.business_date,
                resume_from.cumulative_volume,
            )
        self._metrics.gauge(catalog.TRACK_B_SLOTS_ALLOCATED).set(self.table.allocated)
        return True

    def note_refusal(self) -> None:
        """A trigger the cluster refused: counts towards slot starvation."""
        self._refused(self._clock())

    def _watch(self, symbol: str, now: float) -> None:
        self.detector.registered(symbol, now)
        self.session.register(symbol)

    def _log_claim(self, trigger: Trigger, claim: Claim) -> None:
        """A claim (and the eviction it made) at info, ``CLAIM_LOG_LINES`` per window."""
        held_back = self._claim_log.spend()
        if held_back is not None and claim.slot is not None:
            log.info(
                "slot claimed symbol=%s slot=%d trigger=%s score=%.2f evicted=%s suppressed=%d",
                trigger.symbol,
                claim.slot.index,
                trigger.kind.value,
                trigger.score,
                claim.evicted or "-",
                held_back,
            )

    def release(self, symbol: str) -> None:
        """Give up ``symbol``'s slot (unsubscribe); an open gap is recorded as unrecovered."""
        if self.table.release(symbol) is not None:
            self._unwatch(symbol, self._clock())
            self._metrics.gauge(catalog.TRACK_B_SLOTS_ALLOCATED).set(self.table.allocated)

    def slot_views(self) -> list[SlotView]:
        """The held slots in slot order, for the status page."""
        return [
            SlotView(
                index=slot.index,
                symbol=slot.symbol,
                held_since=slot.claimed_at,
                last_frame_at=self.detector.last_received(slot.symbol),
                trigger=self._trigger_of.get(slot.symbol, ""),
                score=slot.value,
            )
            for slot in self.table.slots()
        ]

    def _unwatch(self, symbol: str, now: float) -> None:
        self._trigger_of.pop(symbol, None)
        self.session.unregister(symbol)
        window = self.detector.unregistered(symbol, now)
        if window is not None:
            self._gaps_in_flight += 1
            self._count_gap(window)
            self._pending.put_nowait((window, False))

    # --- running -------------------------------------------------------------
    async def run(self) -> None:
        """Run the session, the silent-symbol check and the backfill worker until cancelled.

        Returns at once when ``track_b.enabled`` is false.
        """
        if not self._settings.enabled:
            log.info("track B disabled")
            return
        await self._load_resume_points()  # before the session: no record can come first
        await self._load_pending_gaps()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.session.run(), name="track-b-session")
            group.create_task(self._check_silent_forever(), name="track-b-silent")
            group.create_task(self._backfill_forever(), name="track-b-backfill")

    async def _load_resume_points(self) -> None:
        if self._last_trades is None:
            return
        try:
            self._resume_points = dict(await self._last_trades())
        except ObserverError as exc:
            log.error("last stored trades unreadable, no resume after restart: %s", exc)
            return
        now = self._clock()
        for symbol in self.detector.watched():  # registered while the points were loading
            self._resume(symbol, now)
        log.info("resume points loaded symbols=%d", len(self._resume_points))

    def adopt(self, windows: list[GapWindow]) -> None:
        """Backfill ``windows``: pending gaps another member left (cluster hand-over),
        treated as carried over from an earlier process."""
        for window in windows:
            self._gaps_in_flight += 1
            self._pending.put_nowait((window, True))
        if windows:
            log.info("pending gaps adopted from the cluster count=%d", len(windows))

    async def _load_pending_gaps(self) -> None:
        """Queue for backfill the gaps an earlier process stored but did not finish."""
        if self._pending_gaps is None:
            return
        try:
            windows = await self._pending_gaps()
        except ObserverError as exc:
            log.error("pending gaps unreadable, left pending: %s", exc)
            return
        for window in windows:
            self._gaps_in_flight += 1
            self._pending.put_nowait((window, True))
        log.info("pending gaps carried over count=%d", len(windows))

    def _business_day(self) -> str:
        """The day trades-by-time answers: the session's, or today (KST) before a record."""
        return self.detector.latest_business_date() or kst_day(self._clock())

    def _resume(self, symbol: str, now: float) -> None:
        """Tell the detector ``symbol``'s last stored trade, on its first registration only.

        Later registrations in this process start afresh (a stretch without a
        slot is not a hole in Track B's data).
        """
        last = self._resume_points.pop(symbol, None)
        if last is not None and self.detector.resume(symbol, last, now):
            log.info(
                "resumed symbol=%s business_date=%s cumulative=%d",
                symbol,
                last.business_date,
                last.cumulative_volume,
            )

    def backfill_idle(self) -> bool:
        """No gap waits for or is in backfill (tests poll this)."""
        return self._gaps_in_flight == 0

    async def _backfill_forever(self) -> None:
        while True:
            window, carried = await self._pending.get()
            try:
                if carried and window.business_date != self._business_day():
                    # Trades-by-time answers the current day only (rows carry no date).
                    done = await self.backfiller.unrecoverable(
                        window, "not the current business day"
                    )
                else:
                    done = await self.backfiller.fill(window)
                if self._on_recovered is not None:
                    self._on_recovered(done.gap)
            finally:
                self._gaps_in_flight -= 1

    async def _check_silent_forever(self) -> None:
        interval = min(SILENT_CHECK_MAX_INTERVAL_SECONDS, self._settings.silent_symbol_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            self._flush_counts()
            if not self._market_open():
                self.detector.market_closed(self._clock())
            elif self.session.connected:
                started = time.perf_counter()
                self.detector.check_silent(self._clock())
                self._observe_detection(started)

    # --- SessionListener -----------------------------------------------------
    async def on_trades(self, trades: list[Trade]) -> None:
        now = self._clock()
        self._frames_unflushed += 1
        self._items_unflushed += len(trades)
        if not self._counted_at <= now < self._counted_at + COUNT_FLUSH_SECONDS:
            self._flush_counts(now)
        started = time.perf_counter()
        observe = self.detector.observe
        windows: list[GapWindow] | None = None
        for trade in trades:
            window = observe(trade, now)
            if window is not None:
                if windows is None:
                    windows = []
                windows.append(window)
        self._frame_detection.observe(time.perf_counter() - started)
        if windows is None:
            await self._sink.put_many(trades)  # one hand-off per frame
            return
        self._gaps_in_flight += len(windows)
        for window in windows:
            self._count_gap(window)
        # Gaps first, with their windows (a restart can finish them): a process killed
        # between two commits leaves a gap record (pending) for every hole below the
        # last stored trade, never a silent hole.
        await self._sink.put_many([*windows, *trades])
        for window in windows:
            self._pending.put_nowait((window, False))

    def on_malformed(self, error: FrameError) -> None:
        self._metrics.counter(catalog.TRACK_B_FRAMES_MALFORMED).inc()
        log.debug("malformed frame skipped: %s", error)

    def on_connected(self) -> None:
        self._metrics.gauge(catalog.TRACK_B_SESSION_CONNECTED).set(1)
        log.info("websocket session registered symbols=%d", len(self.session.registered()))

    def on_disconnected(self, reason: str) -> None:
        self._flush_counts()
        self._metrics.gauge(catalog.TRACK_B_SESSION_CONNECTED).set(0)
        self._metrics.counter(catalog.TRACK_B_RECONNECTS).labels(reason).inc()
        storm = self._reconnects.add(self._clock())
        if storm is not None:
            log.error("reconnect storm count=%d window=%.0fs", storm, ALARM_WINDOW_SECONDS)
            if self._reporter is not None:
                self._reporter.reconnect_storm(storm, ALARM_WINDOW_SECONDS, last_reason=reason)
        if not self._market_open():
            return  # no trades are due: a session lost at night is not a hole in the data
        cause = GapCause.SESSION_STALL if reason == "idle" else GapCause.SESSION_DROP
        started = time.perf_counter()
        self.detector.session_lost(cause, self._clock())
        self._observe_detection(started)

    def on_reply(self, reply: ControlReply) -> None:
        if reply.msg_cd == MAX_REGISTRATIONS_REFUSED:
            log.error("registration refused (OPSP0008) symbol=%s; slot released", reply.tr_key)
            self.release(reply.tr_key)
        elif not reply.ok:
            log.info("websocket reply %s %s symbol=%s", reply.msg_cd, reply.msg1, reply.tr_key)

    # --- metrics and reports -------------------------------------------------
    def _refused(self, now: float) -> None:
        starved = self._refusals.add(now)
        if starved is not None and self._reporter is not None:
            self._reporter.slot_starvation(
                starved,
                ALARM_WINDOW_SECONDS,
                capacity=self.table.capacity,
                allocated=self.table.allocated,
            )

    def _count_gap(self, window: GapWindow) -> None:
        gap = window.gap
        if self._on_gap is not None:
            self._on_gap(gap)
        self._metrics.counter(catalog.GAPS_DETECTED).labels(
            gap.track.value, gap.severity.value, gap.cause.value
        ).inc()
        log.info(
            "gap detected symbol=%s cause=%s severity=%s seconds=%.3f missing_volume=%s",
            gap.symbol,
            gap.cause.value,
            gap.severity.value,
            gap.duration_seconds,
            gap.missing_volume,
        )

    def _flush_counts(self, now: float | None = None) -> None:
        """Add the frames and records counted since the last flush to their counters."""
        self._counted_at = self._clock() if now is None else now
        self._frame_detection.flush()
        if self._frames_unflushed:
            self._frames_received.inc(self._frames_unflushed)
            self._items_received.inc(self._items_unflushed)
            self._frames_unflushed = self._items_unflushed = 0

    def _observe_detection(self, started: float) -> None:
        self._detection_seconds.observe(time.perf_counter() - started)

    def _update_slot_idle(self) -> None:
        """Scrape-time seconds since the last record, per occupied slot (label = slot index)."""
        gauge = self._metrics.gauge(catalog.TRACK_B_SLOT_IDLE)
        now = self._clock()
        held = {slot.index: slot.symbol for slot in self.table.slots()}
        for index in range(self.table.capacity):
            symbol = held.get(index)
            last = self.detector.last_activity(symbol) if symbol is not None else None
            if last is None:
                gauge.remove(str(index))  # a free slot has no series (no-op if none)
            else:
                gauge.labels(str(index)).set(max(0.0, now - last))
