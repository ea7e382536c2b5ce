"""Prometheus scrapes Observer: every catalog metric has a series."""

from __future__ import annotations

import pytest

from metrics import catalog
from metrics.catalog import Kind, MetricSpec
from tests.e2e.conftest import World
from tests.stack.poll import until

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _series_name(spec: MetricSpec) -> str:
    return spec.sample("_count") if spec.kind is Kind.HISTOGRAM else spec.name


async def test_prometheus_scrapes_observer_as_job_observer(world: World) -> None:
    (sample,) = await world.api.query('up{job="observer"}')
    assert sample["metric"]["instance"] == world.observer.target
    assert sample["value"][1] == "1"


async def test_every_catalog_metric_has_a_series(world: World) -> None:
    names = {_series_name(spec) for spec in catalog.CATALOG}
    absent: set[str] = set(names)

    async def complete() -> bool:
        result = await world.api.query('count by (__name__) ({job="observer"})')
        absent.intersection_update(names - {sample["metric"]["__name__"] for sample in result})
        return not absent

    # Every entry is registered at start, so one scrape is enough.
    try:
        await until(complete, timeout_seconds=20, what="a series for every catalog metric")
    except AssertionError:
        raise AssertionError(f"no series for {sorted(absent)}") from None
