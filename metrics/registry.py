"""Registry construction from the catalog, and typed access to its metrics."""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import product
from typing import TypeVar

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics import MetricWrapperBase

from metrics import catalog
from metrics.catalog import Kind, MetricSpec

Clock = Callable[[], float]
M = TypeVar("M", bound=MetricWrapperBase)


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors on."""
    # _created series double the counter count and no dashboard reads them.
    # prometheus_client only offers a process-wide switch for this.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _build(spec: MetricSpec, registry: CollectorRegistry) -> MetricWrapperBase:
    labels = list(spec.labels)
    if spec.kind is Kind.COUNTER:
        return Counter(spec.family, spec.help, labels, registry=registry)
    if spec.kind is Kind.GAUGE:
        return Gauge(spec.name, spec.help, labels, registry=registry)
    return Histogram(spec.name, spec.help, labels, registry=registry, buckets=spec.buckets)


def _closed_label_sets(spec: MetricSpec) -> Iterable[tuple[str, ...]]:
    """Every label combination of ``spec`` when all its labels are closed sets."""
    value_sets = [spec.values_of(label) for label in spec.labels]
    if not spec.labels or not all(value_sets):
        return ()
    return product(*value_sets)


class Metrics:
    """The catalog's metrics, registered in an injected registry.

    Metrics with only closed label sets are initialised at zero for every
    combination, so a query finds a series before the first event.
    ``on_collect`` hooks compute scrape-time values (uptime, token validity,
    idle seconds) and run on every ``refresh()``, which the exporter calls
    before each exposition.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str = "0.0.0",
        clock: Clock = time.monotonic,
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._started = clock()
        self._hooks: list[Callable[[], None]] = []
        self._by_spec: dict[MetricSpec, MetricWrapperBase] = {}
        for spec in catalog.CATALOG:
            metric = _build(spec, registry)
            for values in _closed_label_sets(spec):
                metric.labels(*values)
            self._by_spec[spec] = metric
        self.gauge(catalog.BUILD_INFO).labels(version, platform.python_version()).set(1)
        self.on_collect(self._update_uptime)

    def counter(self, spec: MetricSpec) -> Counter:
        """The counter declared by ``spec``; TypeError if it is not one."""
        return self._typed(spec, Counter)

    def gauge(self, spec: MetricSpec) -> Gauge:
        """The gauge declared by ``spec``; TypeError if it is not one."""
        return self._typed(spec, Gauge)

    def histogram(self, spec: MetricSpec) -> Histogram:
        """The histogram declared by ``spec``; TypeError if it is not one."""
        return self._typed(spec, Histogram)

    def on_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before every exposition (it must be cheap and not block)."""
        self._hooks.append(hook)

    def refresh(self) -> None:
        """Bring scrape-time values up to date; call before reading the registry."""
        for hook in self._hooks:
            hook()

    def uptime_seconds(self) -> float:
        return self._clock() - self._started

    def _update_uptime(self) -> None:
        self.gauge(catalog.SYSTEM_UPTIME).set(self.uptime_seconds())

    def _typed(self, spec: MetricSpec, kind: type[M]) -> M:
        metric = self._by_spec[spec]
        if not isinstance(metric, kind):
            raise TypeError(f"{spec.name} is a {spec.kind.value}, not a {kind.__name__}")
        return metric


class BatchedHistogram:
    """Observations of a (label-less) histogram counted here and added to it on ``flush``.

    For a hot path that observes far more often than anyone scrapes: ``observe``
    is a bisect and two additions, no lock; ``flush`` adds the counts since the
    last flush to the histogram's buckets and sum (call it before every exposition
    and at a short interval). A bucket is chosen as ``Histogram.observe`` does
    (the first upper bound at or above the value), so after a flush the series
    are those of observing each value directly.
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        # prometheus_client keeps the bounds (ending with +Inf), one value per bucket
        # and the sum on the histogram itself; no public call adds several at once.
        self._bounds: list[float] = list(histogram._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._pending = False

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount
        self._pending = True

    def flush(self) -> None:
        """Add what was observed since the last flush to the histogram."""
        if not self._pending:
            return
        buckets = self._histogram._buckets
        for index, count in enumerate(self._counts):
            if count:
                buckets[index].inc(count)
                self._counts[index] = 0
        self._histogram._sum.inc(self._sum)
        self._sum = 0.0
        self._pending = False
