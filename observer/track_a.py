"""Track A: continuous current-price sweeps over the universe at the limiter's pace.

Each sweep asks every symbol once, with enough calls in flight that the
limiter never waits on the network, and no more: ``in_flight()`` (the limiter's
``calls_in_flight_needed``: rate × the slowest recent round trip plus headroom)
bounds them, so a call's limiter wait, part of its collection time, stays short.
Symbols whose call failed with a retryable error are asked again at the end of
the sweep, up to ``track_a.retries`` more passes; those still missing count in
``observer_track_a_snapshots_failed_total``.

While the market is open, each symbol's snapshot age is checked against
``track_a.expected_cadence_seconds`` (``observer_track_a_freshness_checks_total``);
a snapshot that arrives later than that closes a stale-snapshot gap, stored and
counted. Outside market hours sweeps pause unless ``sweep_when_closed`` or the
market is forced open (the embedded simulator's ``always_open``), and the
freshness baseline restarts at the next open so a night is not a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from metrics import catalog
from metrics.registry import Metrics
from observer.config import GapSettings, TrackASettings
from observer.kis.errors import KisApiError
from observer.market import MarketCalendar, kst_day
from observer.readiness import Readiness
from observer.records import Gap, GapCause, Recovery, Snapshot, Track, Trigger
from observer.severity import severity_for
from observer.status import SweepProgress
from observer.tracking import trace_operation
from observer.triggers import TriggerDetector
from observer.universe import Universe

log = logging.getLogger(__name__)
CLOSED_POLL_SECONDS = 60.0
HOLIDAY_RETRY_SECONDS = 3600.0


def stale_snapshot_gap(
    symbol: str, last_at: float, now_at: float, *, cadence_seconds: float, gaps: GapSettings
) -> Gap | None:
    """The Track A gap between two snapshots of ``symbol`` further apart than the cadence."""
    if now_at - last_at <= cadence_seconds:
        return None
    return Gap(
        symbol=symbol,
        track=Track.A,
        cause=GapCause.STALE_SNAPSHOT,
        start=last_at,
        end=now_at,
        severity=severity_for(now_at - last_at, gaps),
        recovery=Recovery.NOT_APPLICABLE,
    )


class SnapshotSource(Protocol):
    async def inquire_price(self, symbol: str, *, lane: str = "sweep") -> Snapshot: ...


class RecordSink(Protocol):
    async def put(self, record: Snapshot | Gap) -> None: ...


class MarketHours:
    """Whether to treat the market as open now, keeping ``observer_market_open`` current.

    Holidays are fetched with ``fetch_holidays(YYYYMMDD)`` at most once per KST day
    (after a failure, again an hour later; meanwhile the weekday rule holds).
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        forced_open: bool = False,
        fetch_holidays: Callable[[str], Awaitable[dict[str, bool]]] | None = None,
        calendar: MarketCalendar | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.calendar = calendar or MarketCalendar()
        self.forced_open = forced_open
        self._metrics = metrics
        self._fetch = fetch_holidays
        self._clock = clock
        self._fetched_day = ""
        self._retry_at = 0.0

    async def is_open(self) -> bool:
        now = self._clock()
        if not self.forced_open:
            await self._refresh_holidays(now)
        is_open = self.forced_open or self.calendar.is_open(now)
        self._metrics.gauge(catalog.MARKET_OPEN).set(1 if is_open else 0)
        return is_open

    def seconds_until_open(self) -> float:
        now = self._clock()
        return max(0.0, self.calendar.next_open(now) - now)

    async def _refresh_holidays(self, now: float) -> None:
        day = kst_day(now)
        if self._fetch is None or day == self._fetched_day or now < self._retry_at:
            return
        try:
            self.calendar.update(await self._fetch(day))
        except KisApiError as exc:
            self._retry_at = now + HOLIDAY_RETRY_SECONDS
            log.warning("holiday calendar unavailable, weekday rule used reason=%s", exc)
            return
        self._fetched_day = day


class _InFlight:
    """At most ``limit()`` holders at once; the limit is read again at every entry."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._active = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < max(1, self._limit()))
            self._active += 1

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._changed:
            self._active -= 1
            self._changed.notify()


@dataclass(frozen=True, slots=True)
class SweepResult:
    symbols: int
    collected: int
    failed: int
    duration_seconds: float

    @property
    def completeness(self) -> float:
        return self.collected / self.symbols if self.symbols else 1.0


class TrackA:
    """Sweeps forever (``run``) or once (``sweep``); see the module docstring."""

    def __init__(
        self,
        *,
        client: SnapshotSource,
        universe: Universe,
        storage: RecordSink,
        market: MarketHours,
        settings: TrackASettings,
        gaps: GapSettings,
        detector: TriggerDetector,
        metrics: Metrics,
        concurrency: int,
        in_flight: Callable[[], int] | None = None,
        on_trigger: Callable[[Trigger], None] = lambda trigger: None,
        on_gap: Callable[[Gap], None] = lambda gap: None,
        readiness: Readiness | None = None,
        progress: SweepProgress | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._universe = universe
        self._storage = storage
        self._market = market
        self._settings = settings
        self._gaps = gaps
        self._detector = detector
        self._metrics = metrics
        self._concurrency = max(1, concurrency)
        self._in_flight_limit = in_flight or (lambda: self._concurrency)
        self._on_trigger = on_trigger
        self._on_gap = on_gap
        self._readiness = readiness
        self._progress = progress or SweepProgress(monotonic)
        self._monotonic = monotonic
        # symbol → (wall time, monotonic time) of its last snapshot. Ages come from the
        # monotonic clock so that a wall-clock jump is not taken for a hole in the data.
        self._last_seen: dict[str, tuple[float, float]] = {}
        self.sweeps = 0

    async def run(self) -> None:
        """Sweep while the market is open (or forced); returns only if Track A is disabled."""
        if not self._settings.enabled:
            log.info("track A disabled")
            return
        while True:
            is_open = await self._market.is_open()
            if not is_open and not self._settings.sweep_when_closed:
                self._last_seen.clear()
                if self._readiness is not None and self.sweeps == 0:
                    self._readiness.set("first_sweep", False, "market closed: sweeps paused")
                await asyncio.sleep(min(CLOSED_POLL_SECONDS, self._market.seconds_until_open()))
                continue
            if not self._universe.codes:
                await asyncio.sleep(1.0)
                continue
            await self.sweep(check_freshness=is_open)

    async def sweep(self, *, check_freshness: bool = True) -> SweepResult:
        """One sweep over the universe (traced as ``track_a.sweep`` when Sentry is on)."""
        async with trace_operation("sweep", "track_a.sweep", symbols=len(self._universe)):
            return await self._sweep(check_freshness)

    async def _sweep(self, check_freshness: bool) -> SweepResult:
        started = time.monotonic()
        codes = self._universe.codes
        pending: list[str] = list(codes)
        self._progress.started(len(codes))
        if self._readiness is not None and self.sweeps == 0:
            self._readiness.set("first_sweep", False, f"first sweep running: {len(codes)} symbols")
        collected = 0
        for _ in range(self._settings.retries + 1):
            if not pending:
                break
            retry = await self._pass(pending, check_freshness)
            collected += len(pending) - len(retry)
            pending = retry
        if pending:
            self._metrics.counter(catalog.TRACK_A_SNAPSHOTS_FAILED).inc(len(pending))
            if check_freshness:
                self._check_missing(pending)
        result = SweepResult(len(codes), collected, len(pending), time.monotonic() - started)
        self._finish(result)
        return result

    async def _pass(self, symbols: list[str], check_freshness: bool) -> list[str]:
        """One pass over ``symbols``; returns those to ask again."""
        queue = deque(symbols)
        retry: list[str] = []
        gate = _InFlight(lambda: min(self._concurrency, self._in_flight_limit()))

        async def worker() -> None:
            while queue:
                async with gate:
                    if not queue:
                        break
                    symbol = queue.popleft()
                    if not await self._collect(symbol, check_freshness):
                        retry.append(symbol)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._concurrency, len(symbols))):
                group.create_task(worker())
        return retry

    async def _collect(self, symbol: str, check_freshness: bool) -> bool:
        started = time.perf_counter()
        try:
            snapshot = await self._client.inquire_price(symbol, lane="sweep")
        except KisApiError as exc:
            log.debug("snapshot failed symbol=%s reason=%s", symbol, exc)
            return False
        self._metrics.histogram(catalog.TRACK_A_COLLECTION_DURATION).observe(
            time.perf_counter() - started
        )
        await self._storage.put(snapshot)
        self._metrics.counter(catalog.TRACK_A_SNAPSHOTS).inc()
        self._progress.advanced()
        seen = (snapshot.collected_at, self._monotonic())
        if check_freshness:
            await self._check_fresh(symbol, seen[1])
        self._last_seen[symbol] = seen
        for trigger in self._detector.observe(snapshot):
            try:
                self._on_trigger(trigger)
            except Exception:
                log.exception("trigger hook failed symbol=%s", symbol)
        return True

    async def _check_fresh(self, symbol: str, monotonic_now: float) -> None:
        last = self._last_seen.get(symbol)
        if last is None:
            return
        started = time.perf_counter()
        last_wall, last_monotonic = last
        gap = stale_snapshot_gap(
            symbol,
            last_wall,
            last_wall + (monotonic_now - last_monotonic),
            cadence_seconds=self._settings.expected_cadence_seconds,
            gaps=self._gaps,
        )
        self._metrics.histogram(catalog.GAP_DETECTION_DURATION).observe(
            time.perf_counter() - started
        )
        checks = self._metrics.counter(catalog.TRACK_A_FRESHNESS_CHECKS)
        if gap is None:
            checks.labels("fresh").inc()
            return
        checks.labels("stale").inc()
        self._metrics.counter(catalog.GAPS_DETECTED).labels(
            gap.track.value, gap.severity.value, gap.cause.value
        ).inc()
        log.info(
            "gap detected track=a symbol=%s cause=%s severity=%s seconds=%.1f",
            symbol,
            gap.cause.value,
            gap.severity.value,
            gap.duration_seconds,
        )
        await self._storage.put(gap)
        self._on_gap(gap)

    def _check_missing(self, symbols: list[str]) -> None:
        """Symbols without a snapshot this sweep: stale once their last one is too old."""
        now = self._monotonic()
        checks = self._metrics.counter(catalog.TRACK_A_FRESHNESS_CHECKS)
        for symbol in symbols:
            last = self._last_seen.get(symbol)
            if last is not None:
                fresh = now - last[1] <= self._settings.expected_cadence_seconds
                checks.labels("fresh" if fresh else "stale").inc()

    def _finish(self, result: SweepResult) -> None:
        self.sweeps += 1
        self._progress.finished(result.duration_seconds)
        self._metrics.counter(catalog.TRACK_A_SWEEPS).inc()
        self._metrics.histogram(catalog.TRACK_A_SWEEP_DURATION).observe(result.duration_seconds)
        self._metrics.gauge(catalog.TRACK_A_SWEEP_COMPLETENESS).set(result.completeness)
        if self._readiness is not None:
            self._readiness.set("first_sweep", True, f"{self.sweeps} sweeps")
        log.info(
            "sweep done symbols=%d collected=%d failed=%d seconds=%.2f",
            result.symbols,
            result.collected,
            result.failed,
            result.duration_seconds,
        )
