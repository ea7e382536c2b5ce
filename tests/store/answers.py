"""Realistic records for storage tests: the simulator's own current-price answers."""

from __future__ import annotations

from observer.config import SimSettings
from observer.records import Snapshot
from observer.sim.quotes import price_output
from observer.sim.state import ExchangeState


def sim_snapshots(
    count: int, *, symbols: int = 500, start_at: float | None = None
) -> list[Snapshot]:
    """``count`` snapshots: ``symbols`` symbols swept again and again, one answer a second
    apart, every field as the simulator answers it."""
    state = ExchangeState(SimSettings(always_open=True, start_at="2026-12-02 10:00:00"))
    codes = state.universe_codes()[:symbols]
    now = state.clock.now()
    first = now if start_at is None else start_at
    snapshots = []
    for i in range(count):
        code = codes[i % len(codes)]
        process = state.model.process(code, now + i * 0.05)
        assert process is not None
        fields = price_output(process)
        snapshots.append(
            Snapshot(
                symbol=code,
                collected_at=first + i * 0.05,
                price=int(fields["stck_prpr"]),
                cumulative_volume=int(fields["acml_vol"]),
                fields=fields,
            )
        )
    return snapshots
