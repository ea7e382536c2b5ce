"""A healthy Observer fires no alert but Watchdog: runs first, before any fault is injected.

The stack warms up until Track B holds every slot (the busiest steady state of the
simulated market: triggers are refused and slots evicted from then on), then for the
longest ``for`` of the e2e rule profile, so that any condition a healthy Observer meets
has had time to fire. Alertmanager must then list only ``Watchdog`` for a few seconds.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from rules.params import E2E, RuleParams
from rules.render import all_definitions
from tests.e2e.conftest import World
from tests.stack.poll import until

pytestmark = pytest.mark.asyncio(loop_scope="session")

SLOTS_FULL_TIMEOUT_SECONDS = 90.0
# After the longest `for`: one evaluation, one notification and Alertmanager's group wait.
SETTLE_SECONDS = 2.0
HOLD_SECONDS = 3.0


def longest_for_seconds() -> int:
    """The longest ``for`` among the alerts Prometheus runs in the e2e profile."""
    return max(d.rule.for_seconds for d in all_definitions(RuleParams(profile=E2E)))


async def _value(world: World, expr: str) -> float | None:
    result = await world.api.query(expr)
    return float(result[0]["value"][1]) if result else None


async def _slots_full(world: World) -> float | None:
    """Observer's uptime once every Track B slot is allocated, else None."""
    full = await world.api.query(
        'observer_trackb_slots_allocated{job="observer"} '
        '>= observer_trackb_slots_capacity{job="observer"}'
    )
    if not full:
        return None
    return await _value(world, 'observer_system_uptime_seconds{job="observer"}')


def _describe(alerts: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{name} ({item['labels'].get('severity')}, {item['status']['state']}, "
        f"since {item.get('startsAt')})"
        for name, item in sorted(alerts.items())
    )


async def test_healthy_observer_fires_only_watchdog(world: World) -> None:
    full_at = await until(
        lambda: _slots_full(world),
        timeout_seconds=SLOTS_FULL_TIMEOUT_SECONDS,
        what="Track B holding every slot",
    )
    settled_at = full_at + longest_for_seconds() + SETTLE_SECONDS

    async def settled() -> bool:
        uptime = await _value(world, 'observer_system_uptime_seconds{job="observer"}')
        return uptime is not None and uptime >= settled_at

    await until(
        settled,
        timeout_seconds=settled_at - full_at + 30,
        what=f"Observer up for {settled_at:.0f} s",
    )
    others: dict[str, dict[str, Any]] = {}
    seen_watchdog = False
    hold_until = time.monotonic() + HOLD_SECONDS

    async def held() -> bool:
        nonlocal seen_watchdog
        for item in await world.api.alerts():
            name = item["labels"]["alertname"]
            if name == "Watchdog":
                seen_watchdog = True
            else:
                others.setdefault(name, item)
        return time.monotonic() >= hold_until

    await until(
        held, timeout_seconds=HOLD_SECONDS + 10, what="the hold period", interval_seconds=0.5
    )
    assert not others, f"firing on a healthy Observer besides Watchdog: {_describe(others)}"
    assert seen_watchdog, "Watchdog missing from Alertmanager"
