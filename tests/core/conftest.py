"""Observer core against the in-process simulator: helpers to run ObserverApp and wait on it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from metrics.registry import Metrics
from observer.config import ObserverSettings, SimSettings
from observer.credentials import demo_credentials
from observer.readiness import Readiness
from observer.runtime import Endpoint, ObserverApp
from observer.sim import SimExchange


def sim_settings(**overrides: Any) -> SimSettings:
    base: dict[str, Any] = {
        "symbols": 100,
        "seed": 1,
        "always_open": True,
        "rate_limit": 100.0,
        "token_min_interval_seconds": 1.0,
    }
    return SimSettings(**(base | overrides))


def observer_settings(tmp_path: Path, **sections: dict[str, Any]) -> ObserverSettings:
    document: dict[str, Any] = {
        "data_dir": str(tmp_path),
        "rate_limit": {"rate_per_second": 100.0, "backoff_seconds": 0.2},
        "token": {"min_issue_interval_seconds": 1.0},
        "storage": {"flush_interval_seconds": 0.05},
    }
    for name, values in sections.items():
        document[name] = document.get(name, {}) | values
    return ObserverSettings.model_validate(document)


async def wait_for(
    condition: Callable[[], bool], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``condition`` every 20 ms until it holds; AssertionError after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    sim: SimExchange,
    settings: ObserverSettings,
    metrics: Metrics,
    *,
    label: str = "core-test",
    readiness: Readiness | None = None,
) -> AsyncIterator[ObserverApp]:
    """ObserverApp against ``sim`` (as an external endpoint, market forced open) until exit."""
    endpoint = Endpoint(sim.rest_url, sim.ws_url, demo_credentials(label), always_open=True)
    app = ObserverApp(settings, endpoint, metrics=metrics, readiness=readiness or Readiness())
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await wait_for(lambda: app.context is not None or task.done(), what="app start")
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    metrics.refresh()
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )
