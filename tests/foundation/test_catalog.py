"""The catalog follows Prometheus naming rules and covers the spec's metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metrics import catalog
from metrics.catalog import Kind
from observer.commands.docs import rendered_docs

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^observer_[a-z0-9_]+$")
BASE_UNIT_SUFFIXES = ("_seconds", "_bytes", "_ratio")
FORBIDDEN_UNITS = ("_milliseconds", "_ms", "_minutes", "_hours", "_percent", "_kilobytes")

# The spec's table, under the names it gives; renamed ones must map to a catalog entry.
SPEC_METRICS = (
    "observer_universe_size",
    "observer_universe_created_total",
    "observer_universe_deleted_total",
    "observer_track_a_snapshots_total",
    "observer_track_a_collection_duration_seconds",
    "observer_track_b_slots_total",
    "observer_track_b_slots_allocated",  # exported as observer_trackb_* (promtool lint)
    "observer_track_b_triggers_total",
    "observer_track_b_collection_speed",
    "observer_token_refreshes_total",
    "observer_token_validity_seconds",
    "observer_gaps_detected_total",
    "observer_gaps_low_total",
    "observer_gaps_medium_total",
    "observer_gaps_high_total",
    "observer_gap_detection_duration_seconds",
    "observer_rate_limit_tokens_total",
    "observer_rate_limit_delays_total",
    "observer_rate_limit_delay_duration_seconds",
    "observer_api_requests_total",
    "observer_api_request_duration_seconds",
    "observer_api_errors_total",
    "observer_system_uptime_seconds",
)


def test_names_are_unique_and_well_formed() -> None:
    names = [spec.name for spec in catalog.CATALOG]
    assert len(names) == len(set(names))
    for spec in catalog.CATALOG:
        assert NAME.match(spec.name), spec.name
        assert spec.help.endswith("."), spec.name
        assert not spec.name.endswith(FORBIDDEN_UNITS), spec.name


@pytest.mark.parametrize("spec", catalog.CATALOG, ids=lambda s: s.name)
def test_suffixes_match_types(spec: catalog.MetricSpec) -> None:
    if spec.kind is Kind.COUNTER:
        assert spec.name.endswith("_total")
    else:
        assert not spec.name.endswith("_total")
    if spec.unit:
        assert spec.family.endswith(f"_{spec.unit}")
    if spec.kind is Kind.HISTOGRAM:
        assert spec.unit == "seconds" and spec.buckets == tuple(sorted(spec.buckets))


def test_every_spec_metric_is_exported_or_renamed_with_a_reason() -> None:
    exported = {spec.name for spec in catalog.CATALOG}
    renamed = {r.source_name: r for spec in catalog.CATALOG for r in spec.renames}
    for name in SPEC_METRICS:
        assert name in exported or name in renamed, name
        if name in renamed:
            assert name not in exported and len(renamed[name].reason) > 20


def test_labels_are_bounded() -> None:
    for spec in catalog.CATALOG:
        for label in spec.labels:
            bounded = spec.values_of(label) or label in ("slot", "version", "python_version")
            assert bounded, f"{spec.name}{{{label}}} has no declared bound"


def test_by_name_finds_entries_and_names_unknown_ones() -> None:
    assert catalog.by_name("observer_api_requests_total") is catalog.API_REQUESTS
    assert catalog.by_name("observer_api_requests") is catalog.API_REQUESTS
    with pytest.raises(KeyError, match="observer_nope"):
        catalog.by_name("observer_nope")


@pytest.mark.parametrize("name", ["metrics.md", "config.schema.json", "stack.schema.json"])
def test_generated_docs_are_current(name: str) -> None:
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == rendered_docs()[name], (
        f"docs/{name} is stale: run python -m observer.commands.docs"
    )
