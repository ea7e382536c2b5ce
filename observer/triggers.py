"""Pure trigger detection from consecutive snapshots of one symbol (Track A → Track B).

- ``price_move``: ``|price − previous| / previous ≥ track_b.price_move_pct`` %.
- ``volume_surge``: the volume traded since the previous snapshot is at least
  ``track_b.volume_surge_ratio`` × its usual, where the usual is an exponential
  moving average of that symbol's earlier per-snapshot volumes (``USUAL_WEIGHT``)
  that needs ``WARMUP`` observations before it is trusted.

A trigger's ``score`` is how far past its threshold the move is (1.0 = at it).
A falling cumulative volume (a new business day) resets the symbol's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from observer.config import TrackBSettings
from observer.records import Snapshot, Trigger, TriggerKind

USUAL_WEIGHT = 0.2  # weight of the newest per-snapshot volume in the running usual
WARMUP = 3  # per-snapshot volumes seen before a surge can be judged


@dataclass(slots=True)
class _History:
    price: int
    cumulative_volume: int
    usual_volume: float = 0.0
    observed: int = 0


class TriggerDetector:
    """Feed it every snapshot (``observe``); it returns the triggers that snapshot raises."""

    def __init__(self, settings: TrackBSettings) -> None:
        self._price_pct = settings.price_move_pct
        self._surge_ratio = settings.volume_surge_ratio
        self._history: dict[str, _History] = {}

    def forget(self, symbol: str) -> None:
        self._history.pop(symbol, None)

    def observe(self, snapshot: Snapshot) -> list[Trigger]:
        previous = self._history.get(snapshot.symbol)
        if snapshot.price <= 0:
            return []  # an unknown symbol answers a zeroed output: nothing to compare
        if previous is None or snapshot.cumulative_volume < previous.cumulative_volume:
            self._history[snapshot.symbol] = _History(snapshot.price, snapshot.cumulative_volume)
            return []
        triggers: list[Trigger] = []
        move_pct = abs(snapshot.price - previous.price) / previous.price * 100.0
        if move_pct >= self._price_pct:
            triggers.append(
                Trigger(
                    symbol=snapshot.symbol,
                    kind=TriggerKind.PRICE_MOVE,
                    score=move_pct / self._price_pct,
                    at=snapshot.collected_at,
                )
            )
        traded = snapshot.cumulative_volume - previous.cumulative_volume
        if previous.observed >= WARMUP and previous.usual_volume > 0:
            threshold = self._surge_ratio * previous.usual_volume
            if traded >= threshold:
                triggers.append(
                    Trigger(
                        symbol=snapshot.symbol,
                        kind=TriggerKind.VOLUME_SURGE,
                        score=traded / threshold,
                        at=snapshot.collected_at,
                    )
                )
        usual = (
            float(traded)
            if previous.observed == 0
            else (1 - USUAL_WEIGHT) * previous.usual_volume + USUAL_WEIGHT * traded
        )
        self._history[snapshot.symbol] = _History(
            snapshot.price, snapshot.cumulative_volume, usual, previous.observed + 1
        )
        return triggers
