"""Fixtures for the simulator tests: an in-process exchange on loopback port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from observer.config import SimSettings
from observer.sim import SimExchange

START = "2026-11-24 10:00:00"  # a Tuesday, mid-session, far from midnight


def settings(**overrides: object) -> SimSettings:
    values: dict[str, object] = {
        "symbols": 200,
        "seed": 1,
        "always_open": True,
        "start_at": START,
        "token_min_interval_seconds": 0.3,
        "push_interval_seconds": 0.05,
    }
    values.update(overrides)
    return SimSettings.model_validate(values)


def busiest(sim: SimExchange, count: int) -> list[str]:
    """The ``count`` listed codes with the highest trade rates (for quick frames)."""
    instruments = sim.state.model.universe.instruments
    codes = sim.universe_codes()
    return sorted(codes, key=lambda code: -instruments[code].trades_per_second)[:count]


@pytest.fixture
async def sim() -> AsyncIterator[SimExchange]:
    # 60× market time: the busiest listed code trades ~36 times a second, so a test waiting
    # for a dozen of its records waits a third of a second (at 20× it waited over one).
    async with SimExchange(settings(speed=60)) as exchange:
        yield exchange


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
