"""PromQL for panels: catalog entries and recorded series under the dashboard's
``job``/``instance`` variables, with ``$__rate_interval`` in every rate and increase.
"""

from __future__ import annotations

from metrics.catalog import MetricSpec
from metrics.promql import DASHBOARD, LabelValue, recorded, selector

RATE_INTERVAL = "$__rate_interval"


def sel(spec: MetricSpec, suffix: str = "", /, **labels: LabelValue) -> str:
    return selector(spec, DASHBOARD, suffix, **labels)


def rate(spec: MetricSpec, by: str = "instance", **labels: LabelValue) -> str:
    """``sum by (by) (rate(spec[$__rate_interval]))``."""
    return f"sum by ({by}) (rate({sel(spec, **labels)}[{RATE_INTERVAL}]))"


def increase(spec: MetricSpec, by: str = "instance", **labels: LabelValue) -> str:
    """``sum by (by) (increase(spec[$__rate_interval]))``."""
    return f"sum by ({by}) (increase({sel(spec, **labels)}[{RATE_INTERVAL}]))"


def quantile(spec: MetricSpec, q: str, by: str = "instance") -> str:
    """A quantile of a histogram no alert shares (so not recorded)."""
    buckets = f"rate({sel(spec, '_bucket')}[{RATE_INTERVAL}])"
    return f"histogram_quantile({q}, sum by ({by}, le) ({buckets}))"


def rec(name: str, **labels: str) -> str:
    """A recorded series shared with the alert rules."""
    return recorded(name, DASHBOARD, **labels)


def buckets(spec: MetricSpec) -> str:
    """Observations per histogram bucket and rate interval, for a heatmap."""
    return f"sum by (le) (increase({sel(spec, '_bucket')}[{RATE_INTERVAL}]))"
