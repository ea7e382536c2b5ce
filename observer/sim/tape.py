"""Per-symbol trade tape: generated trades in compact columns, with their running day state.

Columns (``array``) keep a busy always-open market's hour of history in tens of
megabytes instead of hundreds. Each trade carries what an ``H0STCNT0`` record
needs at that instant (day high/low so far, cumulative buy/sell, …), so any
trade can be rendered later exactly as it would have been live.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload


@dataclass(frozen=True, slots=True)
class Tick:
    """One generated trade and the symbol's running day state just after it."""

    seq: int  # position in the symbol's whole tape (never reused)
    time: float  # simulated Unix seconds
    day: int  # business date YYYYMMDD as an int
    price: int
    volume: int
    cumulative_volume: int
    turnover: int  # won traded so far today (ACML_TR_PBMN)
    base: int  # the day's base price (previous close)
    open: int
    high: int
    low: int
    open_time: float
    high_time: float
    low_time: float
    side: int  # 1: buyer-initiated (at the ask), -1: seller-initiated (at the bid)
    buy_volume: int  # SHNU_CNTG_SMTN so far today
    buy_count: int  # SHNU_CNTG_CSNU
    sell_count: int  # SELN_CNTG_CSNU


_INT_COLUMNS = (
    "day",
    "price",
    "volume",
    "cumulative_volume",
    "turnover",
    "base",
    "open",
    "high",
    "low",
    "side",
    "buy_volume",
    "buy_count",
    "sell_count",
)
_FLOAT_COLUMNS = ("time", "open_time", "high_time", "low_time")


class Tape:
    """Append-only columns with a moving start: trades older than the history are pruned."""

    def __init__(self) -> None:
        self.first_seq = 0  # seq of the oldest trade still held
        self._ints = {name: array("q") for name in _INT_COLUMNS}
        self._floats = {name: array("d") for name in _FLOAT_COLUMNS}

    def __len__(self) -> int:
        return len(self._floats["time"])

    @property
    def next_seq(self) -> int:
        """The seq the next appended trade will get."""
        return self.first_seq + len(self)

    def append(self, tick: Tick) -> None:
        for name, column in self._ints.items():
            column.append(getattr(tick, name))
        for name, fcolumn in self._floats.items():
            fcolumn.append(getattr(tick, name))

    def get(self, seq: int) -> Tick:
        index = seq - self.first_seq
        if not 0 <= index < len(self):
            raise IndexError(f"trade {seq} is not held (have {self.first_seq}..{self.next_seq})")
        values: dict[str, float | int] = {"seq": seq}
        for name, column in self._ints.items():
            values[name] = column[index]
        for name, fcolumn in self._floats.items():
            values[name] = fcolumn[index]
        return Tick(**values)  # type: ignore[arg-type]

    def since(self, seq: int, until_time: float | None = None) -> list[Tick]:
        """Held trades with seq ≥ ``seq`` (and time ≤ ``until_time``), oldest first."""
        start = max(seq, self.first_seq)
        ticks = []
        times = self._floats["time"]
        for current in range(start, self.next_seq):
            if until_time is not None and times[current - self.first_seq] > until_time:
                break
            ticks.append(self.get(current))
        return ticks

    def between(self, start_time: float, end_time: float) -> TapeView:
        """A lazy, time-ordered view of the held trades with start_time ≤ time < end_time."""
        times = self._floats["time"]
        lo = bisect.bisect_left(times, start_time)
        hi = bisect.bisect_left(times, end_time, lo)
        return TapeView(self, self.first_seq + lo, self.first_seq + hi)

    def prune_before(self, time_limit: float) -> None:
        """Forget trades older than ``time_limit``, in chunks so pruning stays cheap."""
        times = self._floats["time"]
        count = bisect.bisect_left(times, time_limit)
        if count < 256 and count < len(times):
            return
        for column in self._ints.values():
            del column[:count]
        for fcolumn in self._floats.values():
            del fcolumn[:count]
        self.first_seq += count


class TapeView(Sequence[Tick]):
    """Trades ``first_seq`` ≤ seq < ``end_seq`` of a tape, built only when indexed.

    Valid until the tape is next pruned; paging bisects it instead of copying a day.
    """

    def __init__(self, tape: Tape, first_seq: int, end_seq: int) -> None:
        self._tape = tape
        self._first = first_seq
        self._end = end_seq

    def __len__(self) -> int:
        return self._end - self._first

    @overload
    def __getitem__(self, index: int) -> Tick: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Tick]: ...

    def __getitem__(self, index: int | slice) -> Tick | Sequence[Tick]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._tape.get(self._first + index)
