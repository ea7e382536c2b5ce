"""The seeded market model: one lazily advanced trade process per symbol (pure).

Each symbol draws from its own random stream, seeded by (seed, code, business
day), one trade at a time: the next arrival time, then the trade. Advancing a
symbol to a time generates every trade up to it, so the result never depends
on when or how often a symbol is looked at, and the cost is proportional to
the symbols actually observed (2,500 symbols average about 125 trades/s).

Arrivals are Poisson with bursts: now and then a symbol's rate jumps about
twelvefold for 15–60 trades, often with a direction, which moves its price by
more than 1 % within minutes (Observer's default trigger). Prices stay on the
KRX tick grid within ±30 % of the day's base price (the previous close).
"""

from __future__ import annotations

import math
import random
from datetime import date

from observer.sim.calendar import Calendar, kst_date, midnight, yyyymmdd
from observer.sim.tape import Tape, Tick
from observer.sim.universe import Instrument, Universe, snap_down, snap_up, tick_down, tick_up

BURST_RATE_FACTOR = 12.0
BURST_START_PROBABILITY = 0.003  # per trade


class SymbolProcess:
    """The trades of one symbol: state of the current business day plus its tape."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        seed: int,
        calendar: Calendar,
        universe: Universe,
        start: float,
        history_seconds: float,
    ) -> None:
        self.instrument = instrument
        self._seed = seed
        self._calendar = calendar
        self._universe = universe
        self._history_seconds = history_seconds
        self.tape = Tape()
        self.delisted = False
        self.base = instrument.base_price
        self.price = self.base
        self._mu = math.log(max(1.0, 2e6 / self.base)) - 1.5
        day = kst_date(start)
        if not calendar.is_business_day(day) or start >= calendar.session(day)[1]:
            day = calendar.next_business_day(day)
        session_start = calendar.session(day)[0]
        self._begin_day(day, max(start, session_start), prestart=start > session_start)

    # -- day lifecycle -------------------------------------------------------------------

    def _begin_day(self, day: date, at: float, *, prestart: bool) -> None:
        """Start business day ``day`` at ``at``; ``prestart``: trading began before ``at``."""
        self.day = day
        self.session_end = self._calendar.session(day)[1]
        if not self._universe.is_listed(self.instrument.code, day):
            self.delisted = True
        self._rng = random.Random(f"{self._seed}:{self.instrument.code}:{day.isoformat()}")
        self.base = self.price
        self.upper = snap_down(self.base * 1.3)
        self.lower = snap_up(self.base * 0.7)
        self.cumulative_volume = self.turnover = 0
        self.buy_volume = self.buy_count = self.sell_count = 0
        self.open = self.high = self.low = 0
        self.open_time = self.high_time = self.low_time = at
        self._burst_left = 0
        self._burst_direction = 0
        if prestart:  # the simulation starts mid-session: as if it had traded since the open
            elapsed = at - self._calendar.session(day)[0]
            mean_volume = math.exp(self._mu + 0.5)
            volume = elapsed * self.instrument.trades_per_second * mean_volume
            self.cumulative_volume = int(volume * self._rng.uniform(0.5, 1.5))
            self.turnover = self.cumulative_volume * self.base
            self.buy_volume = self.cumulative_volume // 2
            self.open = self.high = self.low = self.base
        self.next_time = at + self._interarrival()

    def _interarrival(self) -> float:
        factor = BURST_RATE_FACTOR if self._burst_left > 0 else 1.0
        return self._rng.expovariate(self.instrument.trades_per_second * factor)

    # -- generation ------------------------------------------------------------------------

    def advance(self, until: float) -> None:
        """Generate every trade up to simulated time ``until`` (idempotent, never backwards)."""
        while not self.delisted:
            if self.next_time >= self.session_end:
                next_day = self._calendar.next_business_day(self.day)
                next_start = self._calendar.session(next_day)[0]
                if until < next_start:
                    break
                self._begin_day(next_day, next_start, prestart=False)
                continue
            if self.next_time > until:
                break
            self._trade(self.next_time)
            self.next_time += self._interarrival()
        self.tape.prune_before(until - self._history_seconds)

    def _trade(self, at: float) -> None:
        rng = self._rng
        draw = rng.random()
        if self._burst_left > 0 and self._burst_direction:
            direction = self._burst_direction
            move = direction if draw < 0.55 else (-direction if draw < 0.65 else 0)
        else:
            move = 1 if draw < 0.15 else (-1 if draw < 0.30 else 0)
        if move > 0:
            self.price = min(self.upper, tick_up(self.price))
        elif move < 0:
            self.price = max(self.lower, tick_down(self.price))
        volume = max(1, int(rng.lognormvariate(self._mu, 1.0)))
        if self._burst_left > 0:
            volume *= 3
            self._burst_left -= 1
        elif rng.random() < BURST_START_PROBABILITY:
            self._burst_left = rng.randint(15, 60)
            self._burst_direction = rng.choice((-1, 0, 1))
        side = move if move else (1 if rng.random() < 0.5 else -1)
        self._book(at, volume, side)

    def _book(self, at: float, volume: int, side: int) -> None:
        price = self.price
        if self.open == 0:
            self.open = self.high = self.low = price
            self.open_time = self.high_time = self.low_time = at
        if price > self.high:
            self.high, self.high_time = price, at
        if price < self.low:
            self.low, self.low_time = price, at
        self.cumulative_volume += volume
        self.turnover += price * volume
        if side > 0:
            self.buy_volume += volume
            self.buy_count += 1
        else:
            self.sell_count += 1
        self.tape.append(
            Tick(
                seq=self.tape.next_seq,
                time=at,
                day=int(yyyymmdd(self.day)),
                price=price,
                volume=volume,
                cumulative_volume=self.cumulative_volume,
                turnover=self.turnover,
                base=self.base,
                open=self.open,
                high=self.high,
                low=self.low,
                open_time=self.open_time,
                high_time=self.high_time,
                low_time=self.low_time,
                side=side,
                buy_volume=self.buy_volume,
                buy_count=self.buy_count,
                sell_count=self.sell_count,
            )
        )


class MarketModel:
    """Every symbol's process, created on first touch; the universe and calendar they share."""

    def __init__(
        self,
        *,
        seed: int,
        symbols: int,
        always_open: bool,
        start: float,
        history_seconds: float = 3600.0,
    ) -> None:
        self.seed = seed
        self.start = start
        self.history_seconds = history_seconds
        self.calendar = Calendar(always_open=always_open)
        self.universe = Universe(seed=seed, count=symbols, first_day=kst_date(start))
        self._processes: dict[str, SymbolProcess] = {}

    def process(self, code: str, now: float) -> SymbolProcess | None:
        """The symbol's process advanced to ``now``; None for a code the market never had."""
        instrument = self.universe.instruments.get(code)
        if instrument is None:
            return None
        process = self._processes.get(code)
        if process is None:
            first = self.universe.first_listed(code)
            start = max(self.start, midnight(first))
            process = SymbolProcess(
                instrument,
                seed=self.seed,
                calendar=self.calendar,
                universe=self.universe,
                start=start,
                history_seconds=self.history_seconds,
            )
            self._processes[code] = process
        process.advance(now)
        return process

    @property
    def symbols_advanced(self) -> int:
        """How many symbols have a trade process (were asked for or kept current)."""
        return len(self._processes)

    def listed_codes(self, now: float) -> tuple[str, ...]:
        return self.universe.listed_on(kst_date(now))

    def ticks(self, code: str, now: float, since_seq: int = 0) -> list[Tick]:
        """Held trades of ``code`` from ``since_seq`` up to ``now``, oldest first."""
        process = self.process(code, now)
        return [] if process is None else process.tape.since(since_seq)
