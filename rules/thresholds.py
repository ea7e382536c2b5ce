"""The alert thresholds a stack configuration may change, with their built-in values.

An alert builder reads its threshold with ``threshold_of(params, name)``; its unit-test
cases are built from the same value, so ``promtool test rules`` checks the configured
threshold, not the built-in one. Alerts not listed here have no single number to tune
(ObserverDown, Watchdog, SystemDowntime) or only their ``for``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        "StorageWriteErrors": Threshold(
            default=0, unit="failed batches per 2-minute window, fires above it", maximum=1000
        ),
        "StorageQueueFilling": Threshold(
            default=0.8, unit="share of storage.queue_size in use", minimum=0.05, maximum=0.99
        ),
    }
)


def threshold_of(params: RuleParams, alert: str, severity: str = "") -> float:
    """The configured threshold of ``alert``: the built-in value unless overridden."""
    return params.threshold(alert, THRESHOLDS[alert].default, severity)
