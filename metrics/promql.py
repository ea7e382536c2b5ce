"""PromQL built from catalog entries: selectors with validated labels, scopes, durations.

Rules and dashboards never type a metric name: they pass a catalog entry
(``catalog.API_REQUESTS``) or one of the few metrics Observer does not declare
itself (``up`` from Prometheus, ``process_*`` from prometheus_client's process
collector, listed in ``EXTERNAL``). Label names and closed label values are
checked against the entry, so a renamed metric or label value fails here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metrics import catalog
from metrics.catalog import Kind, MetricSpec

JOB = "observer"  # the job label Prometheus scrapes Observer with


class PromQLError(ValueError):
    """A selector names a label or label value its metric does not have (a bug in a builder)."""


# Metrics Observer's queries read but its catalog does not declare.
UP = MetricSpec(
    name="up",
    kind=Kind.GAUGE,
    help="1 when Prometheus scraped the target, 0 when the scrape failed.",
    group="prometheus",
)
PROCESS_CPU = MetricSpec(
    name="process_cpu_seconds_total",
    kind=Kind.COUNTER,
    help="User and system CPU time spent by the Observer process.",
    group="process",
    unit="seconds",
)
PROCESS_RESIDENT_MEMORY = MetricSpec(
    name="process_resident_memory_bytes",
    kind=Kind.GAUGE,
    help="Resident memory of the Observer process.",
    group="process",
    unit="bytes",
)
PROCESS_START_TIME = MetricSpec(
    name="process_start_time_seconds",
    kind=Kind.GAUGE,
    help="Start time of the Observer process since the Unix epoch.",
    group="process",
    unit="seconds",
)
EXTERNAL: tuple[MetricSpec, ...] = (UP, PROCESS_CPU, PROCESS_RESIDENT_MEMORY, PROCESS_START_TIME)

HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True, slots=True)
class Scope:
    """The matchers every selector of one artefact carries (rules vs dashboards)."""

    matchers: tuple[tuple[str, str, str], ...]

    def render(self) -> list[str]:
        return [f'{label}{op}"{value}"' for label, op, value in self.matchers]


RULES = Scope((("job", "=", JOB),))
DASHBOARD = Scope((("job", "=~", "$job"), ("instance", "=~", "$instance")))

LabelValue = str | tuple[str, ...]


def _matcher(spec: MetricSpec, label: str, value: LabelValue) -> str:
    if label not in spec.labels and not (label == "le" and spec.kind is Kind.HISTOGRAM):
        raise PromQLError(f"{spec.name} has no label {label!r}")
    values = (value,) if isinstance(value, str) else value
    closed = spec.values_of(label)
    unknown = [v for v in values if closed and v not in closed]
    if unknown:
        raise PromQLError(f"{spec.name}{{{label}}} never takes {unknown}")
    if isinstance(value, str):
        return f'{label}="{value}"'
    return f'{label}=~"{"|".join(values)}"'


def selector(spec: MetricSpec, scope: Scope, suffix: str = "", **labels: LabelValue) -> str:
    """``name{scope..., label="value"}`` for ``spec``; ``suffix`` picks a histogram series."""
    if suffix and (spec.kind is not Kind.HISTOGRAM or suffix not in HISTOGRAM_SUFFIXES):
        raise PromQLError(f"{spec.name} has no series {suffix!r}")
    name = spec.sample(suffix) if suffix else spec.name
    parts = scope.render() + [_matcher(spec, k, v) for k, v in labels.items()]
    return name + "{" + ",".join(parts) + "}"


def recorded(name: str, scope: Scope, **labels: str) -> str:
    """A selector of a recorded series (its labels are the rule's own)."""
    parts = scope.render() + [f'{k}="{v}"' for k, v in labels.items()]
    return name + "{" + ",".join(parts) + "}"


def others(values: Iterable[str], *excluded: str) -> tuple[str, ...]:
    """The values of a closed label set except ``excluded`` (each must be in the set)."""
    values = tuple(values)
    missing = [v for v in excluded if v not in values]
    if missing:
        raise PromQLError(f"{missing} not among {values}")
    return tuple(v for v in values if v not in excluded)


def duration(seconds: float) -> str:
    """A Prometheus duration (``90s``, ``5m``, ``1h``) for a whole number of seconds."""
    whole = int(seconds)
    if whole != seconds or whole < 0:
        raise PromQLError(f"durations are whole non-negative seconds, got {seconds}")
    if whole == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def known_metric_names() -> frozenset[str]:
    """Every series name a query may read: catalog and external metrics, histogram series."""
    names: set[str] = set()
    for spec in (*catalog.CATALOG, *EXTERNAL):
        names.add(spec.name)
        if spec.kind is Kind.HISTOGRAM:
            names.update(spec.sample(suffix) for suffix in HISTOGRAM_SUFFIXES)
    return frozenset(names)
