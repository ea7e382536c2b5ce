"""The shared state of one simulated exchange: model, clocks, tokens, limits, faults, counters.

The REST app and the WebSocket server both work on one ``ExchangeState``;
``stats()`` is the body of ``GET /sim/stats`` (no keys, secrets or tokens: per-key
counts are named by key fingerprint, see ``keystats``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from observer.config import SimSettings
from observer.records import Trade
from observer.sim.calendar import kst_date, parse_kst
from observer.sim.clock import SimClock
from observer.sim.faults import FaultBoard
from observer.sim.keystats import TRACKED_REJECTIONS, KeyLedger
from observer.sim.model import MarketModel
from observer.sim.quotes import hhmmss_of
from observer.sim.ratelimit import RateLimits
from observer.sim.tokens import TokenAuthority


@dataclass(slots=True)
class Counters:
    """What ``/sim/stats`` counts."""

    requests: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    frames_sent: Counter[str] = field(default_factory=Counter)
    records_sent: Counter[str] = field(default_factory=Counter)
    records_dropped: Counter[str] = field(default_factory=Counter)
    volume_dropped: Counter[str] = field(default_factory=Counter)
    malformed_sent: int = 0
    rejections: Counter[str] = field(default_factory=Counter)

    def request(self, path: str, outcome: str) -> None:
        self.requests[path][outcome] += 1
        if outcome in TRACKED_REJECTIONS:
            self.rejections[outcome] += 1

    def rejected(self, msg_cd: str) -> None:
        self.rejections[msg_cd] += 1


class ExchangeState:
    """Everything one simulated exchange knows; injected clocks make it testable."""

    def __init__(
        self,
        settings: SimSettings,
        *,
        app_key: str | None = None,
        app_secret: str | None = None,
        real: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.real = real
        start = parse_kst(settings.start_at) if settings.start_at else wall()
        self.clock = SimClock(start=start, speed=settings.speed, real=real)
        self.model = MarketModel(
            seed=settings.seed,
            symbols=settings.symbols,
            always_open=settings.always_open,
            start=start,
            history_seconds=settings.trade_history_seconds,
        )
        allowed = (app_key, app_secret) if app_key and app_secret else None
        self.tokens = TokenAuthority(
            wall=wall, min_interval_seconds=settings.token_min_interval_seconds, allowed=allowed
        )
        self.limits = RateLimits(settings.rate_window, settings.rate_limit)
        self.faults = FaultBoard()
        self.counters = Counters()
        self.sessions_open = 0
        self.registrations: Callable[[], int] = lambda: 0
        self.keys = KeyLedger(self.tokens.accepts_key)
        # app key → registrations of its open session (the WebSocket server sets this)
        self.live_sessions: Callable[[], dict[str, int]] = dict

    def generated_trades(self, symbol: str) -> list[Trade]:
        """Every held trade the model generated for ``symbol`` up to now, oldest first."""
        return [
            Trade(
                symbol=symbol,
                business_date=str(tick.day),
                time=hhmmss_of(tick.time),
                price=tick.price,
                volume=tick.volume,
                cumulative_volume=tick.cumulative_volume,
                source="sim",
            )
            for tick in self.model.ticks(symbol, self.clock.now())
        ]

    def universe_codes(self) -> list[str]:
        """The 6-digit share codes (group ST) listed on the current simulated day."""
        return list(self.model.universe.listed_on(kst_date(self.clock.now())))

    def key_stats(self, app_key: str) -> dict[str, Any]:
        """The ``keys`` entry of ``stats()`` for ``app_key``; zeros for a key never seen."""
        return self.keys.of_key(app_key, self.live_sessions())

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        rejections = {code: counters.rejections.get(code, 0) for code in TRACKED_REJECTIONS}
        return {
            "requests": {path: dict(by_code) for path, by_code in counters.requests.items()},
            "tokens_issued": self.tokens.tokens_issued,
            "approval_keys_issued": self.tokens.approval_keys_issued,
            "ws_sessions_open": self.sessions_open,
            "registrations": self.registrations(),
            "frames_sent": dict(counters.frames_sent),
            "records_sent": dict(counters.records_sent),
            "records_dropped": dict(counters.records_dropped),
            "volume_dropped": dict(counters.volume_dropped),
            "malformed_sent": counters.malformed_sent,
            "rejections": rejections,
            "active_faults": self.faults.describe(self.real()),
            "symbols_advanced": self.model.symbols_advanced,
            "simulated_time": self.clock.now(),
            "keys": self.keys.snapshot(self.live_sessions()),
        }
