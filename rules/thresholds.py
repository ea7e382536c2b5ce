"""The alert thresholds a stack configuration may change, with their built-in values.

An alert builder reads its threshold with ``threshold_of(params, name)``; its unit-test
cases are built from the same value, so ``promtool test rules`` checks the configured
threshold, not the built-in one. Alerts not listed here have no single number to tune
(ObserverDown, Watchdog, SystemDowntime) or only their ``for``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

from rules.params import RuleParams


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """A threshold's built-in value, what it is measured in, and its valid range."""

    default: float
    unit: str
    minimum: float = 0.0
    maximum: float = float("inf")


THRESHOLDS = MappingProxyType(
    {
        "UniverseSizeAnomaly": Threshold(
            default=0.5,
            unit="deviation from the one-day average, as a share",
            minimum=0.05,
            maximum=0.9,
        ),
        "RapidUniverseExpansion": Threshold(
            default=100, unit="symbols added per hour", minimum=5, maximum=100_000
        ),
        "TrackACollectionDelayed": Threshold(
            default=1.0, unit="seconds, p99 of inquire_price calls", minimum=0.1, maximum=9.9
        ),
        "TrackANoSnapshots": Threshold(
            default=0.1, unit="snapshots per second (fires below it)", minimum=0.001, maximum=10
        ),
        "TrackBSlotStarvation": Threshold(
            default=0.8, unit="share of triggers refused a slot", minimum=0.55, maximum=0.98
        ),
        "TrackBCollectionSlow": Threshold(
            default=0.5,
            unit="share of allocated slots silent for 5 minutes",
            minimum=0.3,
            maximum=0.94,
        ),
        "HighGapDetectionRate": Threshold(
            default=10, unit="gaps per second", minimum=2, maximum=10_000
        ),
        "HighSeverityGapsDetected": Threshold(
            default=0, unit="high-severity gaps in 15 minutes (fires above it)", maximum=1000
        ),
        "GapDetectionLatency": Threshold(
            default=0.5, unit="seconds, p99 of a gap-rule run", minimum=0.01, maximum=0.99
        ),
        "HighAPIErrorRate": Threshold(
            default=0.05, unit="share of API requests failing", minimum=0.02, maximum=0.99
        ),
        "APICatastrophicErrors": Threshold(
            default=0.5, unit="share of API requests failing", minimum=0.02, maximum=0.99
        ),
        "APIUnresponsive": Threshold(
            default=1.0,
            unit="API requests per second (fires below it)",
            minimum=0.01,
            maximum=1.9,
        ),
        "APILatencyHigh": Threshold(
            default=2.0, unit="seconds, p99 of API requests", minimum=0.1, maximum=9.9
        ),
        "TokenValidityLow": Threshold(
            default=3600,
            unit="seconds of token validity left (fires below it)",
            minimum=900,
            maximum=36_000,
        ),
        "RateLimitHighDelay": Threshold(
            default=1.0,
            unit="seconds, p99 limiter wait of the backfill lane",
            minimum=0.05,
            maximum=4.9,
        ),
        "ObserverCPUHigh": Threshold(default=0.9, unit="CPU cores used", minimum=0.3, maximum=8),
        "ObserverMemoryNearLimit": Threshold(
            default=0.9, unit="share of alerts.memory_limit_bytes", minimum=0.6, maximum=0.99
        ),
        "ObserverRestartLoop": Threshold(
            default=2, unit="restarts in 15 minutes (fires above it)", minimum=1, maximum=10
        ),
        "TrackAFreshnessBudgetBurn": Threshold(
            default=14.4,
            unit="burn rate of the 1 % error budget (critical 14.4, warning 6)",
            minimum=1,
            maximum=50,
        ),
        "StorageWriteErrors": Threshold(
            default=0, unit="failed batches per 2-minute window, fires above it", maximum=1000
        ),
        "StorageQueueFilling": Threshold(
            default=0.8, unit="share of storage.queue_size in use", minimum=0.05, maximum=0.99
        ),
    }
)


# Where one name has two severities, the warning's built-in value differs.
SEVERITY_DEFAULTS = MappingProxyType({("TrackAFreshnessBudgetBurn", "warning"): 6.0})


def default_of(alert: str, severity: str = "") -> float:
    return SEVERITY_DEFAULTS.get((alert, severity), THRESHOLDS[alert].default)


def threshold_of(params: RuleParams, alert: str, severity: str = "") -> float:
    """The configured threshold of ``alert``: the built-in value unless overridden."""
    return params.threshold(alert, default_of(alert, severity), severity)


def p99_bucket(buckets: tuple[float, ...], limit: float) -> tuple[float, float]:
    """(lower bound, p99) of the lowest histogram bucket whose p99 lies above ``limit``.

    With every observation in that bucket, ``histogram_quantile(0.99, ...)`` interpolates
    to ``lower + 0.99 * (upper - lower)``. ValueError when no finite bucket is high enough.
    """
    bounds = (0.0, *buckets)
    for lower, upper in pairwise(bounds):
        value = lower + (upper - lower) * 0.99
        if value > limit:
            return lower, value
    raise ValueError(f"no bucket lies above {limit}")
