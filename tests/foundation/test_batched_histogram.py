"""BatchedHistogram: counted locally, the same series as direct observations once flushed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from metrics.registry import BatchedHistogram

BUCKETS = (0.0001, 0.001, 0.01, 0.1)
VALUES = (0.00005, 0.0001, 0.0002, 0.001, 0.05, 0.1, 0.5, 3.0, 0.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_flushed_observations_are_the_series_of_direct_ones() -> None:
    direct_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("t_seconds", "t", buckets=BUCKETS, registry=direct_registry)
    batched = BatchedHistogram(
        Histogram("t_seconds", "t", buckets=BUCKETS, registry=batched_registry)
    )
    for value in VALUES:
        direct.observe(value)
        batched.observe(value)
    assert samples(batched_registry)[("t_seconds_count", "")] == 0  # nothing before a flush
    batched.flush()
    assert samples(batched_registry) == samples(direct_registry)
    batched.flush()  # nothing new: nothing added twice
    for value in VALUES[:3]:
        direct.observe(value)
        batched.observe(value)
    batched.flush()
    assert samples(batched_registry) == samples(direct_registry)
