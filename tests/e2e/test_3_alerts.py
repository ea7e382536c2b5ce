"""Fault → alert: each simulator fault that an alert exists for reaches Alertmanager, then resolves.

Runs on its own Observer and stack (a test file runs whole on one worker; the kill test
last: it restarts Observer). Time to fire is measured from the fault to the alert listed by
Alertmanager's ``/api/v2/alerts``; with ``ALERTS_E2E_REPORT=FILE`` the observed
table is written to FILE (docs/alerts-e2e.md is made from it).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import World
from tests.stack.poll import until

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIRE_TIMEOUT_SECONDS = 45.0
RESOLVE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Observation:
    fault: str
    alert: str
    severity: str
    fired_after_seconds: float
    resolved_after_seconds: float
    also_firing: tuple[str, ...]  # alerts that appeared with it, not active before the fault


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def observations() -> AsyncIterator[list[Observation]]:
    found: list[Observation] = []
    yield found
    report = os.environ.get("ALERTS_E2E_REPORT")
    if report:
        _write_report(Path(report), found)


def _write_report(path: Path, found: list[Observation]) -> None:
    lines = [
        "| fault | alert | severity | time to fire | time to resolve | also firing |",
        "|---|---|---|---|---|---|",
        *(
            f"| {o.fault} | `{o.alert}` | {o.severity} | {o.fired_after_seconds:.1f} s "
            f"| {o.resolved_after_seconds:.1f} s | {', '.join(o.also_firing) or '-'} |"
            for o in found
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def _active(world: World, alert: str) -> dict[str, Any] | None:
    for item in await world.api.alerts():
        if item["labels"].get("alertname") == alert:
            return item
    return None


async def _gone(world: World, alert: str) -> bool:
    return await _active(world, alert) is None


async def fault_to_alert(
    world: World,
    *,
    fault: str,
    alert: str,
    start: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
    fire_timeout_seconds: float = FIRE_TIMEOUT_SECONDS,
    resolve_timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS,
) -> Observation:
    """Start the fault, wait for ``alert`` in Alertmanager, end the fault, wait for it to go."""
    await until(
        lambda: _gone(world, alert),
        timeout_seconds=resolve_timeout_seconds,
        what=f"{alert} not active before the fault",
    )
    before = await world.api.alert_names()
    began = time.monotonic()
    await start()
    item = await until(
        lambda: _active(world, alert),
        timeout_seconds=fire_timeout_seconds,
        what=f"{alert} in Alertmanager after {fault}",
    )
    fired = time.monotonic() - began
    also = tuple(sorted(await world.api.alert_names() - before - {alert}))
    await end()
    ended = time.monotonic()
    await until(
        lambda: _gone(world, alert),
        timeout_seconds=resolve_timeout_seconds,
        what=f"{alert} resolved after {fault} ended",
    )
    resolved = time.monotonic() - ended
    return Observation(fault, alert, item["labels"]["severity"], fired, resolved, also)


async def _exporter_value(world: World, name: str, **labels: str) -> float:
    """A sample read straight from Observer's /metrics (no scrape delay)."""
    async with world.api.http.get(f"{world.observer.exporter_url}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not exported")


async def test_watchdog_is_always_in_alertmanager(world: World) -> None:
    item = await until(
        lambda: _active(world, "Watchdog"), timeout_seconds=20, what="Watchdog in Alertmanager"
    )
    assert item["status"]["state"] == "active"
    await until(
        lambda: _notified(world, "Watchdog"),
        timeout_seconds=20,
        what="Watchdog delivered to the webhook receiver",
    )


async def _notified(world: World, alert: str) -> bool:
    return any(
        entry["labels"].get("alertname") == alert
        for _at, payload in world.sink.notifications
        for entry in payload.get("alerts", [])
    )


async def test_token_expiry_fires_token_expired(
    world: World, observations: list[Observation]
) -> None:
    sim = world.observer.sim_url
    refreshes = "observer_token_refreshes_total"

    async def expire_right_after_a_refresh() -> None:
        # A refresh follows the first expiry at once; the second one lands inside the
        # issuance guard, so Observer holds an expired token until the guard lets it refresh.
        before = await _exporter_value(world, refreshes, result="success")
        await world.api.fault(sim, {"kind": "token_expire"})
        await until(
            lambda: _increased(world, refreshes, before),
            timeout_seconds=30,
            what="Observer refreshing its token after the first expiry",
        )
        await world.api.fault(sim, {"kind": "token_expire"})

    async def nothing() -> None:
        return None  # the guard ends the fault: the next issuance gets a valid token

    observations.append(
        await fault_to_alert(
            world,
            fault="token_expire (inside the issuance guard)",
            alert="TokenExpired",
            start=expire_right_after_a_refresh,
            end=nothing,
        )
    )


async def _increased(world: World, name: str, before: float) -> bool:
    return await _exporter_value(world, name, result="success") > before


async def test_egw00201_storm_fires_high_api_error_rate(
    world: World, observations: list[Observation]
) -> None:
    sim = world.observer.sim_url
    storm = {"kind": "rest_errors", "msg_cd": "EGW00201", "http_status": 500, "seconds": 60}
    observations.append(
        await fault_to_alert(
            world,
            fault="rest_errors EGW00201 (storm)",
            alert="HighAPIErrorRate",
            start=lambda: world.api.fault(sim, storm),
            end=lambda: world.api.fault(sim, None),
        )
    )


async def test_latency_fires_api_latency_high(
    world: World, observations: list[Observation]
) -> None:
    sim = world.observer.sim_url
    slow = {"kind": "latency", "ms": 2500, "seconds": 90}
    observations.append(
        await fault_to_alert(
            world,
            fault="latency 2500 ms",
            alert="APILatencyHigh",
            start=lambda: world.api.fault(sim, slow),
            end=lambda: world.api.fault(sim, None),
        )
    )


async def test_websocket_drop_fires_high_severity_gap(
    world: World, observations: list[Observation]
) -> None:
    sim = world.observer.sim_url

    async def drop_and_refuse() -> None:
        # Reconnects are refused for longer than a high-severity gap (8 s in the harness).
        await world.api.fault(sim, {"kind": "refuse_ws", "seconds": 12})
        await world.api.fault(sim, {"kind": "ws_drop"})

    # Track B measures a gap when a symbol's data resumes, so the alert follows recovery;
    # symbols claimed during the outage report their gaps over the next half minute.
    observations.append(
        await fault_to_alert(
            world,
            fault="ws_drop with reconnects refused for 12 s",
            alert="HighSeverityGapsDetected",
            start=drop_and_refuse,
            end=lambda: world.api.fault(sim, None),
            fire_timeout_seconds=45,
            resolve_timeout_seconds=70,
        )
    )


async def test_websocket_stall_fires_high_severity_gap(
    world: World, observations: list[Observation]
) -> None:
    sim = world.observer.sim_url
    # Longer than the watchdog's idle timeout (15 s in the harness) and a high gap (8 s).
    stall = {"kind": "ws_stall", "seconds": 20}
    observations.append(
        await fault_to_alert(
            world,
            fault="ws_stall 20 s",
            alert="HighSeverityGapsDetected",
            start=lambda: world.api.fault(sim, stall),
            end=lambda: world.api.fault(sim, None),
            fire_timeout_seconds=45,
            resolve_timeout_seconds=70,
        )
    )


async def test_killed_observer_fires_observer_down(
    world: World, observations: list[Observation]
) -> None:
    async def kill() -> None:
        world.observer.kill()

    observations.append(
        await fault_to_alert(
            world,
            fault="Observer killed (SIGKILL), then restarted",
            alert="ObserverDown",
            start=kill,
            end=world.observer.start,
        )
    )
