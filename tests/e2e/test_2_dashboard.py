"""Every dashboard panel's query returns data from Prometheus (template variables substituted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import dashboards
from tests.e2e.conftest import World
from tests.stack.poll import until

# What Grafana would put in: this job, every instance, and a short rate window
# (Grafana's $__rate_interval is at least four scrape intervals; scrapes are 1 s here).
SUBSTITUTIONS = {
    "$__rate_interval": "15s",
    "${job}": "observer",
    "$job": "observer",
    "${instance}": ".*",
    "$instance": ".*",
}


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        if panel.get("type") == "row":
            yield from panels(panel)
        else:
            yield panel


def panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], substitute(target["expr"]))
        for panel in panels(dashboards.dashboard_json())
        for target in panel.get("targets", [])
    ]


def test_substitution_leaves_no_template_variable() -> None:
    queries = panel_queries()
    assert queries
    assert [expr for _title, expr in queries if "$" in expr] == []


@pytest.mark.asyncio(loop_scope="session")
async def test_every_panel_query_returns_data(world: World) -> None:
    queries = panel_queries()

    async def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not await world.api.query(expr)]

    async def all_answered() -> bool:
        return not await empty()

    # Rates need two scrapes inside the window; recording rules one evaluation after that.
    try:
        await until(all_answered, timeout_seconds=45, what="data for every panel query")
    except AssertionError:
        raise AssertionError("panels without data:\n" + "\n".join(await empty())) from None
