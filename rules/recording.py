"""Recording rules for every rate, ratio and quantile that panels and alerts share.

Names follow ``level:metric:operations``: ``instance`` keeps ``job`` and
``instance``; ``instance_quantile`` adds a ``quantile`` label, ``instance_lane_quantile``
the limiter ``lane`` too. The dashboard reads these names from here.
"""

from __future__ import annotations

from types import MappingProxyType

from metrics import catalog
from metrics.promql import (
    PROCESS_CPU,
    PROCESS_RESIDENT_MEMORY,
    others,
    selector,
)
from rules.model import RecordingRule, RuleGroup
from rules.params import RuleParams

WINDOW_SECONDS = 300  # the window of every `rate5m` series (scaled by the profile)

API_REQUEST_RATE = f"instance:{catalog.API_REQUESTS.family}:rate5m"
API_ERROR_RATIO = f"instance:{catalog.API_REQUESTS.family}_errors:ratio_rate5m"
API_LATENCY = f"instance_quantile:{catalog.API_REQUEST_DURATION.name}:histogram_quantile_rate5m"
SNAPSHOT_RATE = f"instance:{catalog.TRACK_A_SNAPSHOTS.family}:rate5m"
COLLECTION_LATENCY = (
    f"instance_quantile:{catalog.TRACK_A_COLLECTION_DURATION.name}:histogram_quantile_rate5m"
)
ITEM_RATE = f"instance:{catalog.TRACK_B_ITEMS_RECEIVED.family}:rate5m"
GAP_DETECTION_LATENCY = (
    f"instance_quantile:{catalog.GAP_DETECTION_DURATION.name}:histogram_quantile_rate5m"
)
LIMITER_DELAY = (
    f"instance_lane_quantile:{catalog.RATE_LIMIT_DELAY_DURATION.name}:histogram_quantile_rate5m"
)
CPU_RATE = f"instance:{PROCESS_CPU.family}:rate5m"
MEMORY_LIMIT_RATIO = f"instance:{PROCESS_RESIDENT_MEMORY.name}:ratio_of_limit"
STORAGE_QUEUE_FILL = f"instance:{catalog.STORAGE_QUEUE_DEPTH.name}:ratio_of_capacity"
SLO_WINDOWS = ("5m", "30m", "1h", "6h")
SLO_WINDOW_SECONDS = MappingProxyType({"5m": 300, "30m": 1800, "1h": 3600, "6h": 21600})
FRESHNESS_STALE_RATIO = MappingProxyType(
    {
        window: f"instance:{catalog.TRACK_A_FRESHNESS_CHECKS.family}_stale:ratio_rate{window}"
        for window in SLO_WINDOWS
    }
)

# Which quantiles are recorded for which histogram (panels show them, alerts use p99).
API_QUANTILES = ("0.5", "0.95", "0.99")
COLLECTION_QUANTILES = ("0.5", "0.99")
GAP_DETECTION_QUANTILES = ("0.95", "0.99")
LIMITER_QUANTILES = ("0.5", "0.99")
# Master-file downloads are bulk transfers, not market-data calls: their seconds-long
# latency would dominate p99 on quiet days, so API latency quantiles leave them out.
LATENCY_ENDPOINTS = others(catalog.ENDPOINTS, "master_file")


def _rate(params: RuleParams, expr: str, seconds: int = WINDOW_SECONDS) -> str:
    return f"rate({expr}[{params.window(seconds)}])"


def _quantiles(
    params: RuleParams, record: str, quantiles: tuple[str, ...], bucket: str, by: str = ""
) -> tuple[RecordingRule, ...]:
    by = by or params.by
    inner = f"sum by ({by}, le) ({_rate(params, bucket)})"
    return tuple(
        RecordingRule(
            record=record,
            expr=f"histogram_quantile({q}, {inner})",
            labels=(("quantile", q),),
        )
        for q in quantiles
    )


def _stale_ratio(params: RuleParams, window: str) -> RecordingRule:
    checks = catalog.TRACK_A_FRESHNESS_CHECKS
    seconds = SLO_WINDOW_SECONDS[window]
    stale = _rate(params, selector(checks, params.scope, result="stale"), seconds)
    every = _rate(params, selector(checks, params.scope), seconds)
    return RecordingRule(
        record=FRESHNESS_STALE_RATIO[window],
        expr=f"sum by ({params.by}) ({stale}) / sum by ({params.by}) ({every})",
    )


def recording_rules(params: RuleParams) -> tuple[RecordingRule, ...]:
    """The shared series, in dependency-free order (each rule reads raw metrics only)."""

    def rate(expr: str) -> str:
        return _rate(params, expr)

    scope, by = params.scope, params.by
    requests = selector(catalog.API_REQUESTS, params.scope)
    errors = selector(catalog.API_REQUESTS, params.scope, outcome="error")
    memory = selector(PROCESS_RESIDENT_MEMORY, params.scope)
    return (
        RecordingRule(record=API_REQUEST_RATE, expr=f"sum by ({params.by}) ({rate(requests)})"),
        RecordingRule(
            record=API_ERROR_RATIO,
            expr=f"sum by ({params.by}) ({rate(errors)}) / sum by ({params.by}) ({rate(requests)})",
        ),
        *_quantiles(
            params,
            API_LATENCY,
            API_QUANTILES,
            selector(
                catalog.API_REQUEST_DURATION, params.scope, "_bucket", endpoint=LATENCY_ENDPOINTS
            ),
        ),
        RecordingRule(
            record=SNAPSHOT_RATE,
            expr=f"sum by ({by}) ({rate(selector(catalog.TRACK_A_SNAPSHOTS, scope))})",
        ),
        *_quantiles(
            params,
            COLLECTION_LATENCY,
            COLLECTION_QUANTILES,
            selector(catalog.TRACK_A_COLLECTION_DURATION, params.scope, "_bucket"),
        ),
        RecordingRule(
            record=ITEM_RATE,
            expr=f"sum by ({by}) ({rate(selector(catalog.TRACK_B_ITEMS_RECEIVED, scope))})",
        ),
        *_quantiles(
            params,
            GAP_DETECTION_LATENCY,
            GAP_DETECTION_QUANTILES,
            selector(catalog.GAP_DETECTION_DURATION, params.scope, "_bucket"),
        ),
        *_quantiles(
            params,
            LIMITER_DELAY,
            LIMITER_QUANTILES,
            selector(catalog.RATE_LIMIT_DELAY_DURATION, params.scope, "_bucket"),
            by=f"{params.by}, lane",
        ),
        *(_stale_ratio(params, window) for window in SLO_WINDOWS),
        RecordingRule(
            record=CPU_RATE,
            expr=f"sum by ({params.by}) ({rate(selector(PROCESS_CPU, params.scope))})",
        ),
        RecordingRule(
            record=MEMORY_LIMIT_RATIO,
            expr=f"{memory} / {params.memory_limit_bytes}",
        ),
        RecordingRule(
            record=STORAGE_QUEUE_FILL,
            expr=f"{selector(catalog.STORAGE_QUEUE_DEPTH, params.scope)} / on ({params.by}) "
            f"{selector(catalog.STORAGE_QUEUE_CAPACITY, params.scope)}",
        ),
    )


def recording_group(params: RuleParams) -> RuleGroup:
    return RuleGroup(
        name="observer.recording",
        rules=recording_rules(params),
        interval_seconds=params.profile.evaluation_interval_seconds,
    )
