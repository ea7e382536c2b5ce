"""Track B gap rules (pure): volume jumps, session drops and stalls, silent symbols.

For one symbol without loss ``ACML_VOL[n] == ACML_VOL[n-1] + CNTG_VOL[n]``
(kis-protocol.md): a larger jump means trades were missed, and exactly how
much volume. A session drop or stall opens a gap for every registered symbol
from its last frame; a registered symbol silent for longer than
``track_b.silent_symbol_seconds`` opens one too. An open gap closes on the
symbol's first record after it, which bounds it in time (``start`` = when the
last good record arrived, ``end`` = when the first one after arrived) and in
cumulative volume (what backfill must find). After a restart the detector
is told each symbol's last stored trade (``resume``): the downtime is then a
``session_drop`` gap from that trade, closed by the symbol's first record like
any other, rated by the downtime alone (from the earlier process's last sign
of life) while its window keeps the exact volume. Severity comes from
``observer.severity.severity_for`` (low / medium / high by duration, see
docs/gaps.md). Times are the caller's clock, in Unix seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from observer.config import GapSettings
from observer.market import KST
from observer.records import Gap, GapCause, Recovery, Track, Trade
from observer.severity import severity_for


@dataclass(frozen=True, slots=True)
class GapWindow:
    """A closed Track B gap and what backfill needs to fill it.

    The missing trades are those of ``business_date`` with
    ``after_cumulative < ACML_VOL <= upto_cumulative``, at or before
    ``before_time`` (HHMMSS). ``after_cumulative`` is None when nothing was
    seen before the hole; then ``since_time`` (the session's latest exchange
    time before the hole) bounds the search instead. ``upto_cumulative`` is
    None when the gap ended without data (the symbol lost its slot).
    """

    gap: Gap
    business_date: str
    after_cumulative: int | None
    upto_cumulative: int | None
    before_time: str
    since_time: str | None

    def with_recovery(self, recovery: Recovery) -> GapWindow:
        return replace(self, gap=replace(self.gap, recovery=recovery))


@dataclass(slots=True)
class _Seen:
    business_date: str
    time: str
    cumulative: int
    received_at: float


@dataclass(slots=True)
class _Open:
    cause: GapCause
    start: float
    since_time: str | None
    carried: bool = False  # opened from the store after a restart, not by this session
    unwatched_from: float | None = None  # severity from here (a restart's downtime), not start


def exchange_timestamp(business_date: str, hhmmss: str) -> float:
    """Unix seconds of an exchange time (``BSOP_DATE`` + ``STCK_CNTG_HOUR``, KST)."""
    moment = dt.datetime.strptime(business_date + hhmmss, "%Y%m%d%H%M%S")
    return moment.replace(tzinfo=KST).timestamp()


@dataclass(slots=True)
class _Symbol:
    watched_from: float  # registration, or the end of the last closed-market stretch
    seen: _Seen | None = None
    open: _Open | None = None

    @property
    def last_activity(self) -> float:
        seen_at = self.seen.received_at if self.seen else self.watched_from
        return max(seen_at, self.watched_from)


class TrackBGapDetector:
    """Per-symbol state of the Track B gap rules; every method is O(1) or O(registered)."""

    def __init__(
        self,
        gap_settings: GapSettings,
        *,
        silent_after_seconds: float,
        previous_alive_at: float | None = None,
    ) -> None:
        self._gap_settings = gap_settings
        self._previous_alive_at = previous_alive_at
        self._silent_after = silent_after_seconds
        self._symbols: dict[str, _Symbol] = {}
        self._latest_time: str | None = None  # the session's latest exchange time (HHMMSS)
        self._latest_date = ""

    def registered(self, symbol: str, now: float) -> None:
        """Start watching ``symbol``; its silence is measured from ``now``."""
        self._symbols.setdefault(symbol, _Symbol(watched_from=now))

    def resume(
        self, symbol: str, last: Trade, now: float, *, alive_at: float | None = None
    ) -> bool:
        """Carry ``symbol``'s last stored trade (``last``) over a restart.

        The process ended with its session, so a ``session_drop`` gap is open
        from ``last`` (its start is ``last``'s exchange time, at most ``now``:
        the store keeps no arrival time) and the symbol's first record closes
        it with the exact missing volume. Its severity counts only the stretch
        no process watched: from ``previous_alive_at`` (the earlier process's
        last sign of life, when known and later than ``last``) to the closing
        record. A record of another business day drops it instead (the chain
        restarts). ``alive_at`` stands in for ``previous_alive_at`` when the
        earlier holder was another process of a cluster (a hand-over). Only a
        watched symbol without a record yet is resumed; answers whether it was.
        """
        state = self._symbols.get(symbol)
        if state is None or state.seen is not None:
            return False
        start = min(exchange_timestamp(last.business_date, last.time), now)
        state.seen = _Seen(last.business_date, last.time, last.cumulative_volume, start)
        if state.open is None:
            alive = self._previous_alive_at if alive_at is None else alive_at
            unwatched = start if alive is None else min(max(start, alive), now)
            state.open = _Open(GapCause.SESSION_DROP, start, last.time, True, unwatched)
        return True

    def unregistered(self, symbol: str, now: float) -> GapWindow | None:
        """Stop watching ``symbol``; an open gap is closed at ``now`` without an upper bound."""
        state = self._symbols.pop(symbol, None)
        if state is None or state.open is None:
            return None
        seen = state.seen
        return self._window(
            symbol,
            state.open,
            end=now,
            business_date=seen.business_date if seen else "",
            after=seen.cumulative if seen else None,
            upto=None,
            before_time=self._latest_time or "",
        )

    def latest_business_date(self) -> str | None:
        """The business date of the newest record seen (the session's day); None before one."""
        return self._latest_date or None

    def watched(self) -> list[str]:
        return list(self._symbols)

    def last_activity(self, symbol: str) -> float | None:
        """When ``symbol`` last had a record (or was registered); None if not watched."""
        state = self._symbols.get(symbol)
        return state.last_activity if state else None

    def last_received(self, symbol: str) -> float | None:
        """When ``symbol``'s latest record arrived; None before its first one."""
        state = self._symbols.get(symbol)
        return state.seen.received_at if state and state.seen else None

    def last_cumulative(self, symbol: str) -> int | None:
        """The ACML_VOL of ``symbol``'s latest record; None before its first one."""
        state = self._symbols.get(symbol)
        return state.seen.cumulative if state and state.seen else None

    def open_gaps(self) -> dict[str, GapCause]:
        return {s: st.open.cause for s, st in self._symbols.items() if st.open is not None}

    def session_lost(self, cause: GapCause, now: float) -> int:
        """The session dropped or stalled: open a gap for every watched symbol without one.

        Returns how many gaps were opened. A gap already open (an earlier drop,
        a silent symbol) keeps its start and cause.
        """
        opened = 0
        for state in self._symbols.values():
            if state.open is None:
                state.open = _Open(cause, state.last_activity, self._latest_time)
                opened += 1
        return opened

    def market_closed(self, now: float) -> None:
        """The market is closed: silence is measured again from ``now`` (no trades are due)."""
        for state in self._symbols.values():
            state.watched_from = now

    def check_silent(self, now: float) -> int:
        """Open a silent-symbol gap for every symbol quiet for longer than the threshold."""
        opened = 0
        for state in self._symbols.values():
            if state.open is None and now - state.last_activity > self._silent_after:
                state.open = _Open(GapCause.SILENT_SYMBOL, state.last_activity, self._latest_time)
                opened += 1
        return opened

    def observe(self, trade: Trade, now: float) -> GapWindow | None:
        """Apply the rules to one received record; the gap it closes or reveals, if any.

        A record that is not newer than the last one seen (a repeat after a
        reconnect), or of a symbol not watched, changes nothing. A record of a
        new business day restarts the volume chain.
        """
        state = self._symbols.get(trade.symbol)
        if state is None:  # not watched (in flight after an unsubscribe): no rule applies
            return None
        seen = state.seen
        if seen is not None and seen.business_date == trade.business_date:
            if trade.cumulative_volume <= seen.cumulative:
                return None
        else:
            seen = None
            if state.open is not None and state.open.carried:
                state.open = None  # carried from another business day: nothing to bound
        if trade.business_date != self._latest_date:
            self._latest_date, self._latest_time = trade.business_date, None
        if self._latest_time is None or trade.time > self._latest_time:
            self._latest_time = trade.time
        if (
            seen is not None
            and state.open is None
            and trade.cumulative_volume - trade.volume <= seen.cumulative
        ):
            # The common case, no volume missed and no gap open: updated in place, no window.
            seen.time, seen.cumulative, seen.received_at = trade.time, trade.cumulative_volume, now
            return None
        window = self._close_or_jump(trade.symbol, state, seen, trade, now)
        state.seen = _Seen(trade.business_date, trade.time, trade.cumulative_volume, now)
        state.open = None
        return window

    def _close_or_jump(
        self, symbol: str, state: _Symbol, seen: _Seen | None, trade: Trade, now: float
    ) -> GapWindow | None:
        upto = trade.cumulative_volume - trade.volume
        after = seen.cumulative if seen else None
        if state.open is not None:
            opened = state.open
        elif seen is not None and upto > seen.cumulative:
            opened = _Open(GapCause.VOLUME_JUMP, seen.received_at, seen.time)
        else:
            return None
        return self._window(
            symbol,
            opened,
            end=now,
            business_date=trade.business_date,
            after=after,
            upto=upto,
            before_time=trade.time,
        )

    def _window(
        self,
        symbol: str,
        opened: _Open,
        *,
        end: float,
        business_date: str,
        after: int | None,
        upto: int | None,
        before_time: str,
    ) -> GapWindow:
        missing = None if after is None or upto is None else max(0, upto - after)
        unwatched = opened.start if opened.unwatched_from is None else opened.unwatched_from
        gap = Gap(
            symbol=symbol,
            track=Track.B,
            cause=opened.cause,
            start=opened.start,
            end=max(end, opened.start),
            severity=severity_for(max(0.0, end - max(opened.start, unwatched)), self._gap_settings),
            missing_volume=missing,
        )
        return GapWindow(
            gap=gap,
            business_date=business_date,
            after_cumulative=after,
            upto_cumulative=upto,
            before_time=before_time,
            since_time=opened.since_time,
        )
