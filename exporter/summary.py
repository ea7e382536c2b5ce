"""The JSON summary (``/api/summary`` and ``summary.json``): the live registry's values
with the readiness and the status board's live state (``docs/status-page.md``)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from metrics import catalog
from metrics.catalog import MetricSpec

Labels = frozenset[tuple[str, str]]
Samples = Mapping[str, list[tuple[Labels, float]]]


def read_samples(metrics: Iterable[Metric]) -> dict[str, list[tuple[Labels, float]]]:
    """Sample name → [(labels, value)] for every sample the collectors yield."""
    samples: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    for family in metrics:
        for sample in family.samples:
            samples[sample.name].append((frozenset(sample.labels.items()), sample.value))
    return samples


def _total(samples: Samples, name: str, **match: str) -> float:
    wanted = set(match.items())
    return sum(value for labels, value in samples.get(name, ()) if wanted <= labels)


def _value(samples: Samples, spec: MetricSpec, **match: str) -> float:
    return _total(samples, spec.name, **match)


def _average_ms(samples: Samples, spec: MetricSpec) -> float:
    count = _total(samples, spec.sample("_count"))
    return round(_total(samples, spec.sample("_sum")) / count * 1000.0, 2) if count else 0.0


def _whole(value: float) -> int:
    return round(value)


class RateTracker:
    """Per-second rate of a counter between successive reads (since start on the first)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[float, float] = (clock(), 0.0)

    def update(self, value: float) -> float:
        now = self._clock()
        then, previous = self._last
        elapsed = now - then
        if elapsed <= 0:
            return 0.0
        self._last = (now, value)
        return max(0.0, (value - previous) / elapsed)


def readiness_fields(report: Mapping[str, Any]) -> dict[str, Any]:
    """``ready``, ``ready_reason`` (the unmet conditions, or ``ok``) and ``readiness``."""
    conditions: Mapping[str, Mapping[str, Any]] = report["conditions"]
    unmet = [f"{name}: {c['reason']}" for name, c in conditions.items() if not c["ok"]]
    return {
        "ready": bool(report["ready"]),
        "ready_reason": "; ".join(unmet) or "ok",
        "readiness": {name: dict(condition) for name, condition in conditions.items()},
    }


def add_live(
    summary: dict[str, Any], samples: Samples, readiness: Mapping[str, Any], live: Mapping[str, Any]
) -> dict[str, Any]:
    """``summary`` with what the status page needs besides the source design's keys.

    ``live`` is ``StatusBoard.view()``; ``readiness`` is ``Readiness.report()``.
    """
    progress = live["sweep_progress"]
    summary["track_a"] |= {
        "sweep_progress": progress,
        "sweep_eta_seconds": progress["eta_seconds"],
    }
    summary["track_b"]["slots"] = live["slots"]
    summary["token"]["valid"] = summary["token"]["validity_seconds"] > 0
    summary["gaps"]["recent"] = live["recent_gaps"]
    summary["storage"] = {
        "queue_depth": _whole(_value(samples, catalog.STORAGE_QUEUE_DEPTH)),
        "queue_capacity": _whole(_value(samples, catalog.STORAGE_QUEUE_CAPACITY)),
        "queue_overflows": _whole(_value(samples, catalog.STORAGE_QUEUE_OVERFLOWS)),
        "write_errors": _whole(_value(samples, catalog.STORAGE_WRITE_ERRORS)),
        "rows_written": _whole(_value(samples, catalog.STORAGE_ROWS_WRITTEN)),
    }
    summary["links"] = {"metrics": "/metrics", "summary": "/api/summary"} | live["links"]
    return readiness_fields(readiness) | summary


def summarize(samples: Samples, *, collection_speed: float) -> dict[str, dict[str, Any]]:
    """The summary with the keys of the source design's example, from registry samples."""
    capacity = _value(samples, catalog.TRACK_B_SLOTS_CAPACITY)
    allocated = _value(samples, catalog.TRACK_B_SLOTS_ALLOCATED)
    requests = _value(samples, catalog.API_REQUESTS)
    errors = _value(samples, catalog.API_ERRORS)
    gaps = catalog.GAPS_DETECTED
    return {
        "universe": {
            "current_size": _whole(_value(samples, catalog.UNIVERSE_SIZE)),
            "total_created": _whole(_value(samples, catalog.UNIVERSE_CREATED)),
            "total_deleted": _whole(_value(samples, catalog.UNIVERSE_DELETED)),
        },
        "track_a": {
            "snapshots_collected": _whole(_value(samples, catalog.TRACK_A_SNAPSHOTS)),
            "avg_collection_duration_ms": _average_ms(samples, catalog.TRACK_A_COLLECTION_DURATION),
        },
        "track_b": {
            "total_slots": _whole(capacity),
            "allocated_slots": _whole(allocated),
            "available_slots": _whole(max(0.0, capacity - allocated)),
            "triggers": _whole(_value(samples, catalog.TRACK_B_TRIGGERS)),
            "collection_speed": round(collection_speed, 2),
        },
        "token": {
            "refreshes": _whole(_value(samples, catalog.TOKEN_REFRESHES, result="success")),
            "validity_seconds": _whole(_value(samples, catalog.TOKEN_VALIDITY)),
        },
        "gaps": {
            "total_detected": _whole(_value(samples, gaps)),
            "low_severity": _whole(_value(samples, gaps, severity="low")),
            "medium_severity": _whole(_value(samples, gaps, severity="medium")),
            "high_severity": _whole(_value(samples, gaps, severity="high")),
        },
        "rate_limiting": {
            "tokens_consumed": _whole(_value(samples, catalog.RATE_LIMIT_TOKENS)),
            "total_delays": _whole(_value(samples, catalog.RATE_LIMIT_DELAYS)),
        },
        "api": {
            "total_requests": _whole(requests),
            "total_errors": _whole(errors),
            "error_rate": round(errors / requests, 3) if requests else 0.0,
            "avg_request_duration_ms": _average_ms(samples, catalog.API_REQUEST_DURATION),
        },
    }


class SummarySource:
    """Builds summaries from one registry; keeps the state collection speed needs."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic):
        self._registry = registry
        self._speed = RateTracker(clock)

    def summary(self, readiness: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        """The whole summary; ``readiness`` and ``live`` were read on the loop that owns them.

        Safe in a worker thread: it reads only the registry (whose collectors lock).
        """
        samples = read_samples(self._registry.collect())
        speed = self._speed.update(_value(samples, catalog.TRACK_B_ITEMS_RECEIVED))
        return add_live(summarize(samples, collection_speed=speed), samples, readiness, live)
