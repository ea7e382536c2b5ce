"""promtool input series for the alert unit tests, built from catalog entries."""

from __future__ import annotations

from metrics.catalog import MetricSpec
from metrics.promql import JOB, LabelValue, Scope, selector
from rules.model import InputSeries

TEST_INSTANCE = "127.0.0.1:9464"
TEST_SCOPE = Scope((("job", "=", JOB), ("instance", "=", TEST_INSTANCE)))
TARGET = (("instance", TEST_INSTANCE), ("job", JOB))  # labels of a per-instance alert


def series(spec: MetricSpec, values: str, **labels: str) -> InputSeries:
    """One input series of ``spec`` scraped from the test instance."""
    return InputSeries(series=selector(spec, TEST_SCOPE, **labels), values=values)


def histogram(
    spec: MetricSpec, above: float, values: str, **labels: LabelValue
) -> tuple[InputSeries, ...]:
    """Bucket series where every observation falls above ``above``: buckets up to it stay 0."""
    out = []
    for bound in (*spec.buckets, float("inf")):
        le = "+Inf" if bound == float("inf") else repr(bound)
        bucket = selector(spec, TEST_SCOPE, "_bucket", le=le, **labels)
        out.append(InputSeries(series=bucket, values=values if bound > above else "0x{n}"))
    return tuple(out)
