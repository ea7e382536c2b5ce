"""Selectors come from catalog entries, and Prometheus's template functions are mirrored."""

from __future__ import annotations

import pytest

from metrics import catalog
from metrics.promql import DASHBOARD, RULES, PromQLError, duration, others, selector
from rules.promtest import humanize, humanize_duration, humanize_percentage, render_template


def test_selectors_carry_scope_and_validated_labels() -> None:
    assert (
        selector(catalog.API_REQUESTS, RULES, outcome="error")
        == 'observer_api_requests_total{job="observer",outcome="error"}'
    )
    assert selector(catalog.API_REQUEST_DURATION, DASHBOARD, "_bucket").startswith(
        'observer_api_request_duration_seconds_bucket{job=~"$job",instance=~"$instance"'
    )
    assert 'lane=~"backfill|sweep"' in selector(
        catalog.RATE_LIMIT_TOKENS, RULES, lane=catalog.LANES
    )


@pytest.mark.parametrize(
    ("args", "labels"),
    [
        ((catalog.API_REQUESTS, RULES), {"outcome": "failed"}),  # not a catalog value
        ((catalog.API_REQUESTS, RULES), {"lane": "sweep"}),  # not a label of the metric
        ((catalog.API_REQUESTS, RULES, "_bucket"), {}),  # not a histogram
    ],
)
def test_selectors_refuse_what_the_catalog_does_not_declare(
    args: tuple[object, ...], labels: dict[str, str]
) -> None:
    with pytest.raises(PromQLError):
        selector(*args, **labels)  # type: ignore[arg-type]


def test_others_and_durations() -> None:
    assert "master_file" not in others(catalog.ENDPOINTS, "master_file")
    with pytest.raises(PromQLError):
        others(catalog.ENDPOINTS, "nope")
    assert [duration(s) for s in (0, 30, 90, 300, 3600, 86400)] == [
        "0s",
        "30s",
        "90s",
        "5m",
        "1h",
        "1d",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (0.5, "500m"), (150, "150"), (1234567, "1.235M"), (3, "3")],
)
def test_humanize(value: float, text: str) -> None:
    assert humanize(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0s"),
        (1.99, "1.99s"),
        (0.995, "995ms"),
        (2940, "49m 0s"),
        (-120, "-2m 0s"),
        (90061, "1d 1h 1m 1s"),
    ],
)
def test_humanize_duration(value: float, text: str) -> None:
    assert humanize_duration(value) == text


def test_templates_render_labels_and_values() -> None:
    assert humanize_percentage(0.1) == "10%"
    text = 'On {{ $labels.instance }}: {{ $value | printf "%.2f" }} and {{ $value | humanize }}'
    assert render_template(text, {"instance": "h:1"}, 0.5) == "On h:1: 0.50 and 500m"
