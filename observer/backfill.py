"""Fill Track B gaps from the trades-by-time REST call (``inquire-time-itemconclusion``).

Pages are fetched newest first from the first record after the gap, through
the injected fetcher (the KIS client on the limiter's ``backfill`` lane),
until the gap's start is covered: a row at or below the last cumulative
volume seen before the gap, or older than the session's last exchange time
when that volume is unknown. Rows inside the gap are de-duplicated by
``Trade.key`` and stored once; the gap is stored again with its recovery:
``full`` when the recovered volume equals the missing volume, ``partial``
when some was found, ``none`` otherwise. Values are never invented. The gap is
stored as its ``GapWindow`` (the store keeps the window, for a restart to read
back a gap still ``pending``); ``unrecoverable`` stores ``none`` without a call
(a gap of an earlier business day, which trades-by-time no longer answers).

Each fill is traced as ``track_b.backfill`` (``observer.tracking.trace_operation``:
a transaction when Sentry tracing is on, a no-op otherwise) with the gap's
symbol, cause, business date, volume window and, at the end, its recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from metrics import catalog
from metrics.registry import Metrics
from observer.errors import ObserverError
from observer.gaps import GapWindow
from observer.records import Gap, Recovery, Trade
from observer.tracking import trace_operation

log = logging.getLogger(__name__)


class Page(Protocol):
    """One trades-by-time page (``observer.kis.client.TradesPage``)."""

    @property
    def trades(self) -> Sequence[Trade]: ...  # at or before the asked time, newest first

    @property
    def more(self) -> bool: ...  # the server says an older page exists


PageFetcher = Callable[[str, str, str], Awaitable[Page]]
"""``async (symbol, before_hhmmss, business_date) -> Page`` on the limiter's backfill lane."""

DEFAULT_MAX_PAGES = 100


class RecordSink(Protocol):
    """Where records go (``observer.storage.Storage``): same key stored once, gaps updated."""

    async def put(self, record: Trade | Gap | GapWindow, /) -> None: ...


@dataclass(slots=True)
class _Progress:
    rows: dict[tuple[str, str, int], Trade]
    covered: bool = False  # paging reached the gap's start (or the start of the day)


def in_window(window: GapWindow, trade: Trade) -> bool:
    """Whether ``trade`` is one of the records ``window`` is missing."""
    if window.business_date and trade.business_date != window.business_date:
        return False
    if window.upto_cumulative is not None and trade.cumulative_volume > window.upto_cumulative:
        return False
    if window.after_cumulative is not None:
        return trade.cumulative_volume > window.after_cumulative
    return window.since_time is not None and trade.time >= window.since_time


def reaches_start(window: GapWindow, page: Sequence[Trade]) -> bool:
    """Whether ``page`` goes back to (or past) the gap's start."""
    if window.after_cumulative is not None:
        return any(t.cumulative_volume <= window.after_cumulative for t in page)
    return window.since_time is not None and any(t.time < window.since_time for t in page)


def judge(window: GapWindow, found: Iterable[Trade], *, covered: bool) -> Recovery:
    """Full, partial or none, from the rows found inside the window."""
    rows = sorted(found, key=lambda t: t.cumulative_volume)
    upto = window.upto_cumulative
    if upto is None:
        return Recovery.NONE
    if window.after_cumulative is not None:
        missing = upto - window.after_cumulative
        recovered = sum(t.volume for t in rows)
        if recovered >= missing:
            return Recovery.FULL
        return Recovery.PARTIAL if rows else Recovery.NONE
    chained = all(b.cumulative_volume - b.volume == a.cumulative_volume for a, b in pairwise(rows))
    if covered and chained and (not rows or rows[-1].cumulative_volume == upto):
        return Recovery.FULL
    return Recovery.PARTIAL if rows else Recovery.NONE


def previous_second(hhmmss: str) -> str | None:
    """The second before ``hhmmss`` (``093000`` → ``092959``); None before midnight."""
    total = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6]) - 1
    if total < 0:
        return None
    return f"{total // 3600:02d}{total % 3600 // 60:02d}{total % 60:02d}"


def next_before(before: str, rows: Sequence[Trade]) -> str | None:
    """Where the next page starts: the oldest row's second, asked again.

    A page may cut its oldest second short, so that second is asked for again
    (rows already held are de-duplicated by key); only a page made entirely of
    ``before``'s own second moves on to the second before it.
    """
    oldest = min(t.time for t in rows)
    return oldest if oldest < before else previous_second(oldest)


class Backfiller:
    """Fills one gap at a time; ``fill`` never raises for a failed fetch (it says ``none``)."""

    def __init__(
        self,
        fetch_page: PageFetcher,
        sink: RecordSink,
        *,
        metrics: Metrics,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self._fetch = fetch_page
        self._sink = sink
        self._metrics = metrics
        self._max_pages = max_pages

    async def fill(self, window: GapWindow) -> GapWindow:
        """Fetch, store the missing rows and the gap's recovery; the updated window.

        Cancellation stops paging; rows already stored stay stored.
        """
        gap = window.gap
        async with trace_operation(
            "backfill",
            "track_b.backfill",
            symbol=gap.symbol,
            cause=gap.cause.value,
            severity=gap.severity.value,
            business_date=window.business_date,
            after_cumulative=window.after_cumulative,
            upto_cumulative=window.upto_cumulative,
            missing_volume=gap.missing_volume,
        ) as span:
            progress = _Progress(rows={})
            if self._needs_rows(window):
                await self._page(window, progress)
            recovery = judge(window, progress.rows.values(), covered=progress.covered)
            for trade in sorted(progress.rows.values(), key=lambda t: t.cumulative_volume):
                await self._sink.put(trade._replace(source="backfill"))
            filled = window.with_recovery(recovery)
            await self._sink.put(filled)
            if span is not None:
                span.set_data("rows", len(progress.rows))
                span.set_data("recovery", recovery.value)
        self._metrics.counter(catalog.GAP_BACKFILLS).labels(recovery.value).inc()
        log.info(
            "gap backfilled symbol=%s cause=%s missing_volume=%s rows=%d recovery=%s",
            window.gap.symbol,
            window.gap.cause.value,
            window.gap.missing_volume,
            len(progress.rows),
            recovery.value,
        )
        return filled

    async def unrecoverable(self, window: GapWindow, reason: str) -> GapWindow:
        """Store ``window``'s gap as ``none`` without fetching (``reason`` is logged)."""
        filled = window.with_recovery(Recovery.NONE)
        await self._sink.put(filled)
        self._metrics.counter(catalog.GAP_BACKFILLS).labels(Recovery.NONE.value).inc()
        log.info(
            "gap not backfilled symbol=%s cause=%s business_date=%s missing_volume=%s reason=%s",
            window.gap.symbol,
            window.gap.cause.value,
            window.business_date or "-",
            window.gap.missing_volume,
            reason,
        )
        return filled

    @staticmethod
    def _needs_rows(window: GapWindow) -> bool:
        if window.upto_cumulative is None or not window.before_time:
            return False
        if window.after_cumulative is not None:
            return window.upto_cumulative > window.after_cumulative
        return window.since_time is not None

    async def _page(self, window: GapWindow, progress: _Progress) -> None:
        before: str | None = window.before_time
        missing = None
        if window.after_cumulative is not None and window.upto_cumulative is not None:
            missing = window.upto_cumulative - window.after_cumulative
        for _ in range(self._max_pages):
            if before is None:
                progress.covered = True
                return
            try:
                page = await self._fetch(window.gap.symbol, before, window.business_date)
            except ObserverError as exc:
                log.warning("backfill page failed symbol=%s: %s", window.gap.symbol, exc)
                return
            rows = page.trades
            for trade in rows:
                if in_window(window, trade):
                    progress.rows.setdefault(trade.key, trade)
            found = sum(t.volume for t in progress.rows.values())
            if not rows or not page.more or reaches_start(window, rows):
                progress.covered = True
                return
            if missing is not None and found >= missing:
                progress.covered = True
                return
            before = next_before(before, rows)
